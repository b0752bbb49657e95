//! The programs in `examples/` that users copy from: built and run, over memory and
//! SQLite; each checks that its books balance and exits non-zero if not.

use std::process::Command;

use ds_tests::binary;

#[test]
fn the_embedding_examples_run_and_balance_their_books() {
    let dir = tempfile::tempdir().unwrap();
    for program in ["ledger-threads", "ledger-tokio"] {
        for store in [
            "memory:".to_string(),
            format!(
                "sqlite:{}",
                dir.path().join(format!("{program}.db")).display()
            ),
        ] {
            let out = Command::new(binary(program))
                .arg(&store)
                .env("DS_CACHE_DIR", dir.path().join("cache"))
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{program} {store}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(stdout.contains("total 500"), "{program} {store}: {stdout}");
            // Five accounts, richest first.
            let balances: Vec<i64> = stdout
                .lines()
                .filter(|l| l.starts_with("Account:"))
                .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
                .collect();
            assert_eq!(balances.len(), 5, "{stdout}");
            assert!(balances.windows(2).all(|w| w[0] >= w[1]), "{stdout}");
        }
    }
}
