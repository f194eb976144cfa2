//! The architecture rule on this repository: no module cycle at any level of any crate,
//! no I/O dependency in the lower crates. Fails with every cycle and the references
//! that make it, so the fix can start from the report.

use std::path::Path;

#[test]
fn no_module_cycles_and_sans_io_lower_crates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let report = match tongdai_arch_check::check(&root) {
        Ok(report) => report,
        Err(e) => panic!("cannot read the workspace at {}: {e}", root.display()),
    };
    assert!(
        report.is_clean(),
        "architecture check failed (run `arch-check cycles` for the same report):\n{report}"
    );
}
