//! An agent's tool loop on the library: one sandbox prepared for the task,
//! every tool command the model asks for run in it, and what the sandbox
//! denied fed back with the command's output.
//!
//!     cargo build --release && sudo install target/x86_64-unknown-linux-gnu/release/cordon /usr/local/bin/
//!     cd ~/src/project && ~/cordon/target/.../examples/agent_loop 'ls' 'cat ~/.ssh/id_rsa' 'echo hi > /etc/x'
//!
//! Each argument is one "tool call" (a shell command line), run with the
//! current directory as the workspace. The `cordon` binary serves the
//! sandbox: `$CORDON_LAUNCHER`, or the first `cordon` in `$PATH` outside the
//! workspace (see `SandboxBuilder::launcher`).
use cordon::Sandbox;

fn main() {
    let calls: Vec<String> = std::env::args().skip(1).collect();
    let sandbox = match Sandbox::builder().profile("workspace-write").build() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("agent_loop: {}", cordon::error::chain(&e));
            std::process::exit(e.exit_code() as i32);
        }
    };
    for call in calls {
        // What a model would get back as the tool's result.
        match sandbox.command("/bin/sh").args(["-c", &call]).output() {
            Ok(out) => {
                println!("$ {call}  (exit {})", out.outcome.code);
                print!("{}", String::from_utf8_lossy(&out.stdout));
                print!("{}", String::from_utf8_lossy(&out.stderr));
                for d in &out.outcome.denials {
                    println!(
                        "  denied: {} {} ({}): {}",
                        d.operation, d.target, d.rule, d.suggestion
                    );
                }
            }
            Err(e) => println!("$ {call}  (cordon: {})", cordon::error::chain(&e)),
        }
    }
}
