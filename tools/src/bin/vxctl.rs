//! vxctl: inspect and configure a running vxswitchd. See `vxctl --help`.

fn main() -> std::process::ExitCode {
    tools::ctl::main()
}
