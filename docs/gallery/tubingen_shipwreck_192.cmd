nst stylize --content docs/gallery/inputs/tubingen.jpg --style docs/gallery/inputs/shipwreck.jpg --size 192 -o docs/gallery/tubingen_shipwreck_192.png --report-every 10
