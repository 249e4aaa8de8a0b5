nst stylize --content docs/gallery/inputs/tubingen.jpg --style docs/gallery/inputs/the_scream.jpg --size 192 -o docs/gallery/tubingen_the_scream_192.png --report-every 10
