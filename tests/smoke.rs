mod support;
use support::*;

#[test]
fn runs_true_as_each_user() {
    for u in users("runs_true_as_each_user") {
        let ws = tempdir(u);
        let out = run_sh(u, "workspace-write", ws.path(), "exit 3");
        assert_code(&out, 3, u);
    }
}
