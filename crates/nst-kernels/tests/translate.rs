//! Layer 0, continued: every pipeline nst builds, translated by naga's back ends as wgpu does on
//! Vulkan (SPIR-V, then checked by `spirv-val`), Metal (MSL), DX12 (HLSL) and GL (GLSL), with
//! the override constants nst gives it. Needs no GPU: on a machine with only one of these
//! back ends, this is what stands for the others.
//!
//! `spirv-val` comes with Debian's `spirv-tools`. Without it the SPIR-V is still written but not
//! checked, after a note; under `CI` that is a failure.

use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{
    Capabilities, ModuleInfo, ShaderStages, SubgroupOperationSet, ValidationFlags, Validator,
};
use naga::{Module, ShaderStage};
use nst_gpu::{wgpu::ShaderRuntimeChecks, Access, Contract};
use nst_kernels::{ConvKernel, GramTiles, Shader, ELEMENT_WISE_CONSTANTS, SHADERS};
use std::io::Write;
use std::process::{Command, Stdio};

/// One pipeline nst builds: an entry point of a shader, with its override constants.
struct Pipeline {
    shader: &'static Shader,
    contract: &'static Contract,
    /// The tuned kernel variant it belongs to, if any.
    variant: Option<String>,
    constants: Vec<(&'static str, f64)>,
}

impl Pipeline {
    /// `file entry (variant: constants)`, for failures.
    fn describe(&self) -> String {
        let constants = match self.constants.is_empty() {
            true => "no override constants".to_string(),
            false => self
                .constants
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join(" "),
        };
        let variant = self
            .variant
            .as_ref()
            .map_or(String::new(), |v| v.clone() + ": ");
        format!(
            "{} {} ({variant}{constants})",
            self.shader.file, self.contract.entry
        )
    }
}

/// Every pipeline nst may build: each convolution kernel and Gram tiling `nst tune` may choose
/// or the built-in choice may use, and every other entry point with the element-wise constants
/// where its file declares them (`nst_kernels::entry`), none otherwise (as `Reduce` and `Lbfgs`
/// build theirs).
fn pipelines(modules: &[Parsed]) -> Vec<Pipeline> {
    let mut out = Vec::new();
    let mut conv = vec![ConvKernel::default()];
    conv.extend(
        ConvKernel::CANDIDATES
            .iter()
            .filter(|k| **k != ConvKernel::default()),
    );
    for k in conv {
        let (shader, entries) = k.entry_points();
        for contract in entries {
            out.push(Pipeline {
                shader,
                contract,
                variant: Some(format!("conv2d kernel {k}")),
                constants: k.constants(),
            });
        }
    }
    // Tilings that differ only in how the forward splits K compile to one shader
    // (`Gram::with_choice`).
    let mut gram: Vec<GramTiles> = vec![GramTiles::default()];
    for t in GramTiles::CANDIDATES {
        if !gram.iter().any(|g| g.same_shader(t)) {
            gram.push(*t);
        }
    }
    for t in gram {
        for contract in nst_kernels::gram::SHADER.contracts {
            out.push(Pipeline {
                shader: &nst_kernels::gram::SHADER,
                contract,
                variant: Some(format!("Gram tiles {t}")),
                constants: t.constants().to_vec(),
            });
        }
    }
    for parsed in modules {
        let declares = |name: &str| {
            parsed
                .module
                .overrides
                .iter()
                .any(|(_, o)| o.name.as_deref() == Some(name))
        };
        let constants = match ELEMENT_WISE_CONSTANTS
            .iter()
            .all(|(name, _)| declares(name))
        {
            true => ELEMENT_WISE_CONSTANTS.to_vec(),
            false => Vec::new(),
        };
        for contract in parsed.shader.contracts {
            if !out.iter().any(|p| p.contract == *contract) {
                out.push(Pipeline {
                    shader: parsed.shader,
                    contract,
                    variant: None,
                    constants: constants.clone(),
                });
            }
        }
    }
    out
}

/// A shader parsed and validated, as wgpu does before any pipeline.
struct Parsed {
    shader: &'static Shader,
    module: Module,
    info: ModuleInfo,
    /// Whether it uses subgroup operations (which some back ends and versions lack).
    subgroups: bool,
}

/// naga's validator with `capabilities` (and, where they include subgroups, every subgroup
/// operation in compute shaders).
fn validator(capabilities: Capabilities) -> Validator {
    let mut validator = Validator::new(ValidationFlags::all(), capabilities);
    validator
        .subgroup_stages(ShaderStages::COMPUTE)
        .subgroup_operations(SubgroupOperationSet::all());
    validator
}

fn parse(shader: &'static Shader) -> Parsed {
    let src = shader.source;
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{} does not parse:\n{}", shader.file, e.emit_to_string(src)));
    let info = validator(Capabilities::SUBGROUP)
        .validate(&module)
        .unwrap_or_else(|e| {
            panic!(
                "{} does not validate:\n{}",
                shader.file,
                e.emit_to_string(src)
            )
        });
    let subgroups = validator(Capabilities::empty()).validate(&module).is_err();
    Parsed {
        shader,
        module,
        info,
        subgroups,
    }
}

/// A back end at one language version.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// Vulkan: SPIR-V (major, minor).
    Spirv(u8, u8),
    /// Metal: MSL (major, minor).
    Msl(u8, u8),
    /// DX12: HLSL for a shader model.
    Hlsl(hlsl::ShaderModel),
    /// GL: GLSL.
    Glsl(glsl::Version),
}

impl Target {
    /// The back end's language.
    fn language(&self) -> &'static str {
        match self {
            Target::Spirv(..) => "SPIR-V",
            Target::Msl(..) => "MSL",
            Target::Hlsl(_) => "HLSL",
            Target::Glsl(_) => "GLSL",
        }
    }

    fn describe(&self) -> String {
        let version = match self {
            Target::Spirv(major, minor) | Target::Msl(major, minor) => format!("{major}.{minor}"),
            Target::Hlsl(model) => model.to_str().replace('_', "."),
            Target::Glsl(version) => version.to_string(),
        };
        format!("{} {version}", self.language())
    }

    /// The Vulkan version whose rules `spirv-val` holds SPIR-V of this version to.
    fn vulkan(major: u8, minor: u8) -> &'static str {
        match (major, minor) {
            (1, 0) => "vulkan1.0",
            (1, 3) => "vulkan1.1",
            (1, 6) => "vulkan1.3",
            v => panic!("no Vulkan version chosen for SPIR-V {v:?}"),
        }
    }
}

/// Each back end at the oldest version wgpu 30 may translate a module to on an adapter that
/// can run it, and at the newest one it emits: the two ends of what drivers are given.
fn targets(subgroups: bool) -> Vec<Target> {
    use hlsl::ShaderModel::{V5_1, V6_0, V6_9};
    let mut t = vec![
        // wgpu emits the newest SPIR-V the device's Vulkan version takes: 1.0 on Vulkan 1.0,
        // 1.3 on Vulkan 1.1 (the first with subgroup operations), 1.6 on Vulkan 1.3 and later
        // (Mesa's lavapipe, which the GPU tests run on without a GPU).
        match subgroups {
            false => Target::Spirv(1, 0),
            true => Target::Spirv(1, 3),
        },
        Target::Spirv(1, 6),
        // The newest MSL the OS has: 1.2 on macOS 10.12, the first with the read-write buffers
        // every kernel writes; 2.2 on macOS 10.15, the first where wgpu offers subgroups; 4.0
        // on macOS 26.
        match subgroups {
            false => Target::Msl(1, 2),
            true => Target::Msl(2, 2),
        },
        Target::Msl(4, 0),
        // Shader model 5.1 with FXC, wgpu's fallback when DXC is missing; wave operations
        // (subgroups) need 6.0 and DXC; 6.9 is the newest wgpu asks for.
        match subgroups {
            false => Target::Hlsl(V5_1),
            true => Target::Hlsl(V6_0),
        },
        Target::Hlsl(V6_9),
    ];
    // wgpu's GL back end targets the context's GLSL version: OpenGL ES through EGL (Linux,
    // Android), where compute shaders need ES 3.1 (310 es), and desktop GL (Windows), which it
    // caps at 450. It offers no subgroup operations, so nst never builds those kernels there.
    if !subgroups {
        t.push(Target::Glsl(glsl::Version::new_gles(310)));
        t.push(Target::Glsl(glsl::Version::Desktop(450)));
    }
    t
}

/// naga's bounds-check policy for wgpu's runtime checks (Vulkan without robustBufferAccess2,
/// Metal; DX12's and GL's are set elsewhere).
fn policies(checks: &ShaderRuntimeChecks) -> naga::proc::BoundsCheckPolicies {
    use naga::proc::BoundsCheckPolicy::{Restrict, Unchecked};
    let policy = if checks.bounds_checks {
        Restrict
    } else {
        Unchecked
    };
    naga::proc::BoundsCheckPolicies {
        index: policy,
        buffer: policy,
        image_load: policy,
        binding_array: Unchecked,
    }
}

/// The SPIR-V of one entry point, as `wgpu_hal::vulkan` writes it: its layout's bindings
/// numbered from 0, in binding order.
fn spirv(
    module: &Module, info: &ModuleInfo, contract: &Contract, version: (u8, u8),
    checks: &ShaderRuntimeChecks,
) -> Result<Vec<u32>, String> {
    let mut binding_map = spv::BindingMap::new();
    for (i, slot) in contract.slots.iter().enumerate() {
        let target = spv::BindingInfo {
            descriptor_set: 0,
            binding: i as u32,
            binding_array_size: None,
        };
        binding_map.insert(binding(slot.binding), target);
    }
    let options = spv::Options {
        lang_version: version,
        binding_map,
        fake_missing_bindings: false,
        bounds_check_policies: policies(checks),
        zero_initialize_workgroup_memory: match nst_gpu::ZERO_INITIALIZE_WORKGROUP_MEMORY {
            true => spv::ZeroInitializeWorkgroupMemoryMode::Polyfill,
            false => spv::ZeroInitializeWorkgroupMemoryMode::None,
        },
        force_loop_bounding: checks.force_loop_bounding,
        ray_query_initialization_tracking: checks.ray_query_initialization_tracking,
        emit_int_div_checks: checks.int_div_checks,
        ..spv::Options::default()
    };
    let pipeline = spv::PipelineOptions {
        shader_stage: ShaderStage::Compute,
        entry_point: contract.entry.to_string(),
    };
    spv::write_vec(module, info, &options, Some(&pipeline)).map_err(|e| e.to_string())
}

/// The MSL of one entry point, as `wgpu_hal::metal` writes it: its buffers in the slots of its
/// layout, in binding order, and the buffer sizes after them.
fn metal(
    module: &Module, info: &ModuleInfo, contract: &Contract, version: (u8, u8),
    checks: &ShaderRuntimeChecks,
) -> Result<String, String> {
    let mut resources = msl::EntryPointResources::default();
    for (i, slot) in contract.slots.iter().enumerate() {
        let target = msl::BindTarget {
            buffer: Some(i as msl::Slot),
            mutable: slot.access == Access::ReadWrite,
            ..Default::default()
        };
        resources.resources.insert(binding(slot.binding), target);
    }
    if contract
        .slots
        .iter()
        .any(|s| !matches!(s.access, Access::Uniform(_)))
    {
        resources.sizes_buffer = Some(contract.slots.len() as msl::Slot);
    }
    let options = msl::Options {
        lang_version: version,
        per_entry_point_map: [(contract.entry.to_string(), resources)].into(),
        fake_missing_bindings: false,
        bounds_check_policies: policies(checks),
        zero_initialize_workgroup_memory: nst_gpu::ZERO_INITIALIZE_WORKGROUP_MEMORY,
        force_loop_bounding: checks.force_loop_bounding,
        emit_int_div_checks: checks.int_div_checks,
        ray_query_initialization_tracking: checks.ray_query_initialization_tracking,
        ..msl::Options::default()
    };
    let pipeline = msl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, contract.entry.to_string())),
        ..Default::default()
    };
    let (source, reflection) =
        msl::write_string(module, info, &options, &pipeline).map_err(|e| e.to_string())?;
    entry_point_errors(reflection.entry_point_names)?;
    Ok(source)
}

/// The HLSL of one entry point, as `wgpu_hal::dx12` writes it: the uniform in register b0,
/// read buffers in t0…, written ones in u0….
fn direct_x(
    module: &Module, info: &ModuleInfo, contract: &Contract, model: hlsl::ShaderModel,
    checks: &ShaderRuntimeChecks,
) -> Result<String, String> {
    let mut registers = [0; 3];
    let mut binding_map = hlsl::BindingMap::new();
    for slot in contract.slots {
        let kind = match slot.access {
            Access::Uniform(_) => 0,
            Access::Read => 1,
            Access::ReadWrite => 2,
        };
        let target = hlsl::BindTarget {
            register: registers[kind],
            ..Default::default()
        };
        registers[kind] += 1;
        binding_map.insert(binding(slot.binding), target);
    }
    let options = hlsl::Options {
        shader_model: model,
        binding_map,
        fake_missing_bindings: false,
        zero_initialize_workgroup_memory: nst_gpu::ZERO_INITIALIZE_WORKGROUP_MEMORY,
        restrict_indexing: checks.bounds_checks,
        force_loop_bounding: checks.force_loop_bounding,
        ray_query_initialization_tracking: checks.ray_query_initialization_tracking,
        ..hlsl::Options::default()
    };
    let pipeline = hlsl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, contract.entry.to_string())),
    };
    let mut source = String::new();
    let reflection = hlsl::Writer::new(&mut source, &options, &pipeline)
        .write(module, info, None)
        .map_err(|e| e.to_string())?;
    entry_point_errors(reflection.entry_point_names)?;
    Ok(source)
}

/// The GLSL of one entry point, as `wgpu_hal::gles` writes it: uniform and storage buffers
/// numbered apart, in binding order, and no bounds checks (GL has none to turn on).
fn gl(
    module: &Module, info: &ModuleInfo, contract: &Contract, version: glsl::Version,
) -> Result<String, String> {
    let (mut uniforms, mut storage) = (0, 0);
    let mut binding_map = glsl::BindingMap::new();
    for slot in contract.slots {
        let counter = match slot.access {
            Access::Uniform(_) => &mut uniforms,
            Access::Read | Access::ReadWrite => &mut storage,
        };
        binding_map.insert(binding(slot.binding), *counter);
        *counter += 1;
    }
    let options = glsl::Options {
        version,
        // wgpu's flags concern vertex and fragment shaders.
        writer_flags: glsl::WriterFlags::empty(),
        binding_map,
        zero_initialize_workgroup_memory: nst_gpu::ZERO_INITIALIZE_WORKGROUP_MEMORY,
    };
    let pipeline = glsl::PipelineOptions {
        shader_stage: ShaderStage::Compute,
        entry_point: contract.entry.to_string(),
        multiview: None,
    };
    let mut source = String::new();
    let unchecked = naga::proc::BoundsCheckPolicies::default();
    glsl::Writer::new(&mut source, module, info, &options, &pipeline, unchecked)
        .and_then(|mut w| w.write())
        .map_err(|e| e.to_string())?;
    Ok(source)
}

/// Group 0's `binding`: nst's kernels use no other group.
fn binding(binding: u32) -> naga::ResourceBinding {
    naga::ResourceBinding { group: 0, binding }
}

/// The first entry point a writer could not write, as an error.
fn entry_point_errors<E: std::fmt::Display>(names: Vec<Result<String, E>>) -> Result<(), String> {
    names
        .into_iter()
        .try_for_each(|n| n.map(drop).map_err(|e| e.to_string()))
}

/// Whether `spirv-val` runs here. Missing, it is a note, or a failure under `CI`.
fn have_spirv_val() -> bool {
    let found = Command::new("spirv-val").arg("--version").output().is_ok();
    if !found {
        let note = "spirv-val is missing (Debian: apt-get install spirv-tools)";
        assert!(std::env::var_os("CI").is_none(), "CI is set and {note}");
        eprintln!("note: {note}; the SPIR-V is written but not validated");
    }
    found
}

/// `spirv-val`'s complaint about `words` under `vulkan`'s rules, if any.
fn spirv_val(words: &[u32], vulkan: &str) -> Result<(), String> {
    let mut child = Command::new("spirv-val")
        .args(["--target-env", vulkan, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spirv-val: {e}"))?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&bytes)
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "spirv-val --target-env {vulkan}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr).trim_end()
        )),
    }
}

#[test]
fn every_pipeline_translates_for_every_back_end() {
    let validate = have_spirv_val();
    let parsed: Vec<Parsed> = SHADERS.iter().map(|s| parse(s)).collect();
    let pipelines = pipelines(&parsed);
    // nst builds its shaders with bounds checks in debug builds and without in release ones
    // (`nst_gpu::BOUNDS_CHECKS`): both.
    let checks = [true, false].map(|bounds_checks| ShaderRuntimeChecks {
        bounds_checks,
        ..nst_gpu::RUNTIME_CHECKS
    });
    let mut failures = Vec::new();
    // Translations per language, in the order of `targets`.
    let mut translated: Vec<(&str, usize)> = Vec::new();
    let mut validated = 0;
    for p in &pipelines {
        let parsed = parsed
            .iter()
            .find(|m| m.shader.file == p.shader.file)
            .expect("every pipeline's shader is in SHADERS");
        // As wgpu does for each pipeline: the constants substituted, the module cut down to the
        // one entry point.
        let constants: naga::back::PipelineConstants = p
            .constants
            .iter()
            .map(|&(name, value)| (name.to_string(), value))
            .collect();
        let stage = Some((ShaderStage::Compute, p.contract.entry));
        let (module, info) = match naga::back::pipeline_constants::process_overrides(
            &parsed.module,
            &parsed.info,
            stage,
            &constants,
        ) {
            Ok(processed) => processed,
            Err(e) => {
                failures.push(format!("{}, every back end: constants: {e}", p.describe()));
                continue;
            }
        };
        for target in targets(parsed.subgroups) {
            for checks in &checks {
                // GL has no bounds checks to turn off: once is enough.
                if matches!(target, Target::Glsl(_)) && !checks.bounds_checks {
                    continue;
                }
                let result = match target {
                    Target::Spirv(major, minor) => {
                        let words = spirv(&module, &info, p.contract, (major, minor), checks);
                        match (words, validate) {
                            (Ok(words), true) => {
                                validated += 1;
                                spirv_val(&words, Target::vulkan(major, minor))
                            }
                            (words, _) => words.map(drop),
                        }
                    }
                    Target::Msl(major, minor) => {
                        metal(&module, &info, p.contract, (major, minor), checks).map(drop)
                    }
                    Target::Hlsl(model) => {
                        direct_x(&module, &info, p.contract, model, checks).map(drop)
                    }
                    Target::Glsl(version) => gl(&module, &info, p.contract, version).map(drop),
                };
                match translated.iter_mut().find(|(l, _)| *l == target.language()) {
                    Some((_, n)) => *n += 1,
                    None => translated.push((target.language(), 1)),
                }
                if let Err(e) = result {
                    let bounds = if checks.bounds_checks {
                        "with"
                    } else {
                        "without"
                    };
                    failures.push(format!(
                        "{}, {} {bounds} bounds checks: {e}",
                        p.describe(),
                        target.describe()
                    ));
                }
            }
        }
    }
    let mut modules: Vec<(&str, String)> = pipelines
        .iter()
        .map(|p| (p.shader.file, format!("{:?}", p.constants)))
        .collect();
    modules.sort();
    modules.dedup();
    let total: usize = translated.iter().map(|(_, n)| n).sum();
    let each: Vec<String> = translated.iter().map(|(l, n)| format!("{l} {n}")).collect();
    let spirv_val = match validate {
        true => format!("{validated} SPIR-V binaries checked by spirv-val"),
        false => "the SPIR-V not checked: no spirv-val".to_string(),
    };
    println!(
        "{} pipelines ({} modules: {} shaders with their variants' constants) × 4 back ends \
         translated: {total} translations ({}; two language versions each, with and without \
         bounds checks except on GL), {spirv_val}",
        pipelines.len(),
        modules.len(),
        SHADERS.len(),
        each.join(", ")
    );
    assert!(
        failures.is_empty(),
        "{} of {total} translations failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
