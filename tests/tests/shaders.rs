//! Layer 0: naga parses and validates every shader. Needs no GPU.

#[test]
fn every_shader_parses_and_validates() {
    assert!(!nst_kernels::SOURCES.is_empty());
    for (name, source) in nst_kernels::SOURCES {
        let module = naga::front::wgsl::parse_str(source)
            .unwrap_or_else(|e| panic!("{name} does not parse:\n{}", e.emit_to_string(source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name} does not validate:\n{}", e.emit_to_string(source)));
    }
}

#[test]
fn every_shader_file_is_compiled_by_a_kernel() {
    // A new file under shaders/ must be added to nst_kernels::SOURCES (workgroup_sum.wgsl is a
    // snippet prepended to the reducing shaders).
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shaders");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name == "workgroup_sum.wgsl" {
            continue;
        }
        assert!(
            nst_kernels::SOURCES.iter().any(|(n, _)| *n == name),
            "shaders/{name} is not in nst_kernels::SOURCES"
        );
    }
}
