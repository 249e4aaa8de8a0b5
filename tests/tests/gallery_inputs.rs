//! The repository's own sample images, the gallery's inputs in `docs/gallery/inputs` (the web
//! page's test and the crate example use them too): each is credited in
//! `docs/gallery/ATTRIBUTION.md`, each credit names a file that is there, and each loads as
//! RGB in [0, 1].

use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn gallery_inputs_are_credited_and_load() {
    let gallery = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/gallery");
    let files: BTreeSet<String> = std::fs::read_dir(gallery.join("inputs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // The credits table's first column: `| inputs/<file> | what | licence |`.
    let attribution = std::fs::read_to_string(gallery.join("ATTRIBUTION.md")).unwrap();
    let credited: BTreeSet<String> = attribution
        .lines()
        .filter_map(|l| l.strip_prefix("| inputs/"))
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(files, credited, "the inputs and their credits differ");
    assert!(files.len() >= 2, "{files:?}");

    for name in &files {
        let path = gallery.join("inputs").join(name);
        let image = nst_transfer::image::load(&path)
            .unwrap_or_else(|e| panic!("{e}"))
            .image;
        assert!(image.pixel_count() > 0, "{name}");
        assert!(
            image.data().iter().all(|v| (0.0..=1.0).contains(v)),
            "{name}: a value outside [0, 1]"
        );
    }
}
