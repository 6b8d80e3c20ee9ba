//! vxswitch-cni: the CNI plugin that attaches a container to vxswitch. Installed as the
//! plugin type `vxswitch` (a file named `vxswitch` in the runtime's CNI plugin directory).

use std::io::Read;

use controlplane::cni;

/// The most configuration a runtime may hand over on stdin.
const MAX_STDIN: u64 = 1 << 20;

fn main() {
    let asks_help = std::env::args()
        .skip(1)
        .any(|a| matches!(a.as_str(), "-h" | "--help" | "help" | "-V" | "--version"));
    if asks_help || std::env::var_os("CNI_COMMAND").is_none() {
        print!("{}", cni::help(env!("CARGO_PKG_VERSION")));
        return;
    }
    let mut stdin = Vec::new();
    let read = std::io::stdin().take(MAX_STDIN).read_to_end(&mut stdin);
    let out = match read {
        Ok(_) => cni::run(&|k| std::env::var(k).ok(), &stdin),
        Err(e) => cni::Outcome {
            stdout: format!(
                "{}\n",
                cni::CniError::new(cni::code::IO_FAILURE, format!("cannot read stdin: {e}"))
                    .to_json("1.0.0")
            ),
            exit: 1,
        },
    };
    print!("{}", out.stdout);
    std::process::exit(out.exit);
}
