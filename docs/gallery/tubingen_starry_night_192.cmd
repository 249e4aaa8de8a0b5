nst stylize --content docs/gallery/inputs/tubingen.jpg --style docs/gallery/inputs/starry_night.jpg --size 192 -o docs/gallery/tubingen_starry_night_192.png --report-every 10
