nst stylize --content docs/gallery/inputs/tubingen.jpg --style docs/gallery/inputs/woman-with-hat-matisse.jpg --size 192 -o docs/gallery/tubingen_woman-with-hat-matisse_192.png --report-every 10
