//! Layer 0: naga parses and validates every shader, and every entry point's Rust binding
//! contract agrees with what the WGSL entry point really uses. Needs no GPU.

use naga::valid::{GlobalUse, ModuleInfo, ValidationFlags, Validator};
use naga::{AddressSpace, StorageAccess, TypeInner};
use nst_gpu::{Access, Contract, Slot, UniformLayout};
use std::collections::BTreeMap;

/// A shader's module and validation info.
fn parse(name: &str, source: &str) -> (naga::Module, ModuleInfo) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name} does not parse:\n{}", e.emit_to_string(source)));
    // Subgroup operations, which conv2d_subgroup.wgsl uses, are offered only on adapters that
    // have them (nst_kernels::ConvKernel::check).
    let info = Validator::new(ValidationFlags::all(), naga::valid::Capabilities::SUBGROUP)
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name} does not validate:\n{}", e.emit_to_string(source)));
    (module, info)
}

fn source(shader: &str) -> &'static str {
    nst_kernels::SHADERS
        .iter()
        .find(|s| s.file == shader)
        .unwrap_or_else(|| panic!("{shader} is not in nst_kernels::SHADERS"))
        .source
}

/// `shaders/<file>` as it is on disk.
fn file_text(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("shaders")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What an entry point uses of one binding, as the WGSL says.
#[derive(Debug)]
enum Used {
    /// A uniform struct: (member name, offset, size) and the struct's size.
    Uniform(Vec<(String, usize, usize)>, usize),
    /// A storage buffer declared `read` or `read_write`, and whether the entry point writes it.
    Storage { read_write: bool, writes: bool },
    /// Anything else (a texture, a non-struct uniform…): nst's kernels have none.
    Other(String),
}

impl Used {
    fn describe(&self) -> String {
        match self {
            Used::Uniform(..) => "a uniform struct".into(),
            Used::Storage {
                read_write: true, ..
            } => "read_write storage".into(),
            Used::Storage { .. } => "read storage".into(),
            Used::Other(what) => what.clone(),
        }
    }
}

/// The group-0 bindings `entry` statically uses (directly or through the functions it
/// calls), by binding number.
fn used_bindings(module: &naga::Module, info: &ModuleInfo, entry: usize) -> BTreeMap<u32, Used> {
    let uses = info.get_entry_point(entry);
    let mut out = BTreeMap::new();
    for (handle, var) in module.global_variables.iter() {
        let usage = uses[handle];
        let Some(binding) = &var.binding else {
            continue;
        };
        if usage.is_empty() || binding.group != 0 {
            continue;
        }
        let used = match (var.space, &module.types[var.ty].inner) {
            (AddressSpace::Uniform, TypeInner::Struct { members, span }) => {
                let members = members
                    .iter()
                    .map(|m| {
                        let size = module.types[m.ty].inner.size(module.to_ctx());
                        let name = m.name.clone().unwrap_or_default();
                        (name, m.offset as usize, size as usize)
                    })
                    .collect();
                Used::Uniform(members, *span as usize)
            }
            (AddressSpace::Storage { access }, _) => Used::Storage {
                read_write: access.contains(StorageAccess::STORE),
                writes: usage.contains(GlobalUse::WRITE),
            },
            (space, ty) => Used::Other(format!("{space:?} {ty:?}")),
        };
        out.insert(binding.binding, used);
    }
    out
}

/// Where the Rust uniform layout and the WGSL struct disagree.
fn layout_problems(
    rust: &UniformLayout, wgsl: &[(String, usize, usize)], span: usize,
) -> Vec<String> {
    let mut problems = Vec::new();
    let rust_fields: Vec<(&str, usize)> = rust.fields.to_vec();
    let wgsl_fields: Vec<(&str, usize)> = wgsl.iter().map(|(n, o, _)| (n.as_str(), *o)).collect();
    if rust_fields != wgsl_fields {
        problems.push(format!(
            "uniform fields (name, offset): Rust {rust_fields:?}, WGSL {wgsl_fields:?}"
        ));
    }
    // The Rust struct must hold every WGSL member; the buffer (zero-padded to 16 bytes) must
    // hold the whole WGSL struct.
    let end = wgsl.iter().map(|(_, o, s)| o + s).max().unwrap_or(0);
    if rust.size < end || rust.size > span || rust.size.next_multiple_of(16).max(16) < span {
        problems.push(format!(
            "uniform size: Rust {} bytes, WGSL members end at {end} and the struct spans {span}",
            rust.size
        ));
    }
    problems
}

/// Every way `contract` disagrees with its WGSL entry point.
fn contract_problems(contract: &Contract) -> Vec<String> {
    let (module, info) = parse(contract.shader, source(contract.shader));
    let Some(index) = module
        .entry_points
        .iter()
        .position(|e| e.name == contract.entry)
    else {
        return vec![format!("no entry point named {}", contract.entry)];
    };
    let mut used = used_bindings(&module, &info, index);
    let mut problems = Vec::new();
    let bindings: Vec<u32> = contract.slots.iter().map(|s| s.binding).collect();
    if !bindings.is_sorted_by(|a, b| a < b) {
        problems.push(format!(
            "slots must list bindings once each, in increasing order (the order of a launch's \
             binds and of the kernel method's views): {bindings:?}"
        ));
    }
    for slot in contract.slots {
        let Slot {
            binding,
            name,
            access,
        } = *slot;
        let what = format!("binding {binding} (`{name}`)");
        match (access, used.remove(&binding)) {
            (_, None) => problems.push(format!(
                "{what} is in the Rust contract but the entry point does not use it"
            )),
            (Access::Uniform(rust), Some(Used::Uniform(wgsl, span))) => {
                problems.extend(
                    layout_problems(rust, &wgsl, span)
                        .into_iter()
                        .map(|p| format!("{what}: {p}")),
                );
            }
            (Access::Read | Access::ReadWrite, Some(Used::Storage { read_write, writes })) => {
                let rust_rw = access == Access::ReadWrite;
                if rust_rw != read_write {
                    let wgsl = if read_write { "read_write" } else { "read" };
                    problems.push(format!("{what} is {access:?} in Rust, {wgsl} in WGSL"));
                }
                if read_write && !writes {
                    problems.push(format!(
                        "{what} is read_write but the entry point only reads it: bind it as \
                         `read` (give the entry point its own binding)"
                    ));
                }
            }
            (access, Some(wgsl)) => problems.push(format!(
                "{what} is {access:?} in Rust, {} in WGSL",
                wgsl.describe()
            )),
        }
    }
    for (binding, wgsl) in used {
        problems.push(format!(
            "binding {binding} ({}) is used by the entry point but missing from the Rust \
             contract",
            wgsl.describe()
        ));
    }
    problems
}

#[test]
fn every_shader_parses_and_validates() {
    assert!(!nst_kernels::SHADERS.is_empty());
    for shader in nst_kernels::SHADERS {
        parse(shader.file, shader.source);
    }
}

#[test]
fn every_shader_file_is_compiled_by_a_kernel() {
    // A new file under shaders/ must be registered in nst_kernels::SHADERS, or in SNIPPETS
    // when it is prepended to other files.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            nst_kernels::SHADERS.iter().any(|s| s.file == name)
                || nst_kernels::SNIPPETS.contains(&name.as_str()),
            "shaders/{name} is not in nst_kernels::SHADERS"
        );
    }
}

/// A registered shader compiles its own file, after the generated uniform struct and any
/// snippets, and lists only contracts of that file.
#[test]
fn every_shader_is_its_file_and_its_contracts() {
    for shader in nst_kernels::SHADERS {
        let file = shader.file;
        assert!(shader.source.starts_with("struct Uniform {"), "{file}");
        assert!(shader.source.ends_with(&file_text(file)), "{file}");
        for c in shader.contracts {
            assert_eq!(c.shader, file, "{} is registered with {file}", c.entry);
        }
    }
}

/// The one source of truth for a kernel's bindings is its Rust contract: it builds the layout
/// and checks each launch. This holds it to the WGSL: every binding an entry point uses (with
/// its address space, access and, for uniforms, struct layout) and no other.
#[test]
fn every_contract_matches_its_entry_point() {
    let mut failures = Vec::new();
    for contract in nst_kernels::SHADERS.iter().flat_map(|s| s.contracts) {
        for p in contract_problems(contract) {
            failures.push(format!("{} {}: {p}", contract.shader, contract.entry));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_entry_point_has_a_contract() {
    for shader in nst_kernels::SHADERS {
        let (module, _) = parse(shader.file, shader.source);
        for e in &module.entry_points {
            assert!(
                shader.contracts.iter().any(|c| c.entry == e.name),
                "{} {} has no contract in its nst_kernels::Shader",
                shader.file,
                e.name
            );
        }
    }
}

/// The check itself: contracts broken in each way it must catch are caught.
#[test]
fn broken_contracts_are_caught() {
    let good = nst_kernels::relu::BACKWARD;
    assert_eq!(contract_problems(&good), Vec::<String>::new());
    let [u, y, gy, gx] = [0, 1, 2, 3].map(|i| good.slots[i]);
    let with = |slots: &'static [Slot]| Contract { slots, ..good };
    let cases: Vec<(Contract, &str)> = vec![
        // A written binding declared as read.
        (
            with(Box::leak(Box::new([u, y, gy, Slot::read(3, "gx")]))),
            "is Read in Rust, read_write in WGSL",
        ),
        // A read binding declared as written.
        (
            with(Box::leak(Box::new([u, y, Slot::read_write(2, "gy"), gx]))),
            "is ReadWrite in Rust, read in WGSL",
        ),
        // A used binding left out (as if marked unused).
        (
            with(Box::leak(Box::new([u, y, gx]))),
            "missing from the Rust contract",
        ),
        // A binding the entry point does not use.
        (
            with(Box::leak(Box::new([u, y, gy, gx, Slot::read(4, "extra")]))),
            "does not use it",
        ),
        // Out of binding order.
        (
            with(Box::leak(Box::new([u, gy, y, gx]))),
            "increasing order",
        ),
        // A storage slot where the uniform is.
        (
            with(Box::leak(Box::new([Slot::read(0, "shape"), y, gy, gx]))),
            "in WGSL",
        ),
    ];
    for (contract, want) in cases {
        let problems = contract_problems(&contract).join("\n");
        assert!(problems.contains(want), "{:?}: {problems}", contract.slots);
    }
    // A uniform whose fields are out of order, or too short.
    static SWAPPED: UniformLayout = UniformLayout {
        size: 8,
        fields: &[("accumulate", 0), ("n", 4)],
    };
    static SHORT: UniformLayout = UniformLayout {
        size: 4,
        fields: &[("n", 0), ("accumulate", 4)],
    };
    for (layout, want) in [(&SWAPPED, "uniform fields"), (&SHORT, "uniform size")] {
        let contract = with(Box::leak(Box::new([Slot::uniform(0, layout), y, gy, gx])));
        let problems = contract_problems(&contract).join("\n");
        assert!(problems.contains(want), "{layout:?}: {problems}");
    }
}
