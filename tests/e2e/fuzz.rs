//! The whole API under generated requests (Schemathesis), as each role: no 5xx, answers that
//! match docs/openapi.yaml, valid data accepted, invalid data refused, and no request that
//! changes Caseport's records and then fails. A short run here; `cargo xtask fuzz` runs the
//! long one for docs/BENCHMARKS.md.

use caseport_tests::demo_app;
use caseport_tests::fuzz;

/// Test cases per operation and role (`CASEPORT_FUZZ_EXAMPLES` to change it).
fn examples() -> u32 {
    std::env::var("CASEPORT_FUZZ_EXAMPLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(15)
}

#[test]
fn the_api_keeps_its_contract_under_generated_requests() {
    let app = demo_app();
    let runs = fuzz::fuzz(&app, examples()).unwrap();
    for run in &runs {
        assert!(
            run.generated > 200,
            "{}: only {} requests\n{}",
            run.role,
            run.generated,
            run.output
        );
        assert_eq!(run.failures, 0, "{}:\n{}", run.role, run.output);
    }
    // The server survived it all, and the audit chain still verifies.
    assert_eq!(app.get("/api/auth/me").status, 401);
    let verdict = caseport_shared::audit::verify_all(&app.db()).unwrap();
    assert!(
        matches!(verdict, caseport_shared::audit::Verdict::Intact { .. }),
        "{verdict:?}"
    );
}
