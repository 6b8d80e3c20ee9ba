//! The systems a run compares: a lab kind, and for vxswitch optionally a named variant — the
//! same switch started with more vxswitchd arguments (`--systems vxswitch,vxswitch:udp,kernel
//! --variant udp='--underlay-gso udp'`), measured in the same interleaved rounds as its own
//! column, named `vxswitch:NAME`.

use std::collections::BTreeMap;
use std::fmt;

use crate::lab::Kind;

/// The longest variant name (it goes into table headers and chart labels).
pub const MAX_VARIANT_LEN: usize = 16;

/// One system of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct System {
    pub kind: Kind,
    /// The variant's name (vxswitch only); None: the kind as it is.
    pub variant: Option<String>,
    /// The variant's extra vxswitchd arguments, after the run's own `--switch-arg`s.
    pub args: Vec<String>,
}

impl System {
    /// A kind without a variant.
    pub fn plain(kind: Kind) -> System {
        System {
            kind,
            variant: None,
            args: Vec::new(),
        }
    }

    /// `vxswitch`, `kernel`, `vxswitch:NAME`: the key of its figures in every output.
    pub fn name(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}:{v}", self.kind),
            None => self.kind.to_string(),
        }
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.name())
    }
}

/// Parses `vxswitch,vxswitch:NAME,kernel`: kinds, vxswitch ones optionally with a variant name;
/// none twice. The variants' arguments come from [`attach_variants`].
pub fn parse_list(list: &str) -> Result<Vec<System>, String> {
    let mut out: Vec<System> = Vec::new();
    for item in list.split(',').map(str::trim) {
        let (kind, variant) = match item.split_once(':') {
            Some((k, v)) => (k, Some(v)),
            None => (item, None),
        };
        let kind: Kind = kind
            .parse()
            .map_err(|e: crate::lab::LabError| e.to_string())?;
        if let Some(v) = variant {
            check_variant_name(v)?;
            if kind != Kind::Vxswitch {
                return Err(format!(
                    "{item}: only vxswitch takes a variant (its arguments are vxswitchd's)"
                ));
            }
        }
        let system = System {
            kind,
            variant: variant.map(str::to_string),
            args: Vec::new(),
        };
        if out.contains(&system) {
            return Err(format!("{item} is listed twice"));
        }
        out.push(system);
    }
    Ok(out)
}

/// A variant name: 1 to [`MAX_VARIANT_LEN`] characters of a-z, 0-9, `-` and `_`.
pub fn check_variant_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_VARIANT_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "variant name {name:?}: use 1 to {MAX_VARIANT_LEN} characters a-z, 0-9, - and _"
        ))
    }
}

/// Parses one `--variant NAME=ARGS`: the name and the arguments, split as a shell splits
/// them ([`shell_split`]).
pub fn parse_variant(s: &str) -> Result<(String, Vec<String>), String> {
    let Some((name, args)) = s.split_once('=') else {
        return Err(format!(
            "{s:?}: give NAME=ARGS, e.g. udp='--underlay-gso udp'"
        ));
    };
    let name = name.trim();
    check_variant_name(name)?;
    let args = shell_split(args).map_err(|e| format!("variant {name}: {e}"))?;
    Ok((name.to_string(), args))
}

/// Gives every `vxswitch:NAME` of `systems` the arguments of its `--variant NAME=...`.
/// Every variant listed must be defined, and every variant defined must be listed (a typo
/// otherwise silently measures the plain switch twice).
pub fn attach_variants(
    systems: &mut [System],
    variants: &[(String, Vec<String>)],
) -> Result<(), String> {
    let mut defined: BTreeMap<&str, &Vec<String>> = BTreeMap::new();
    for (name, args) in variants {
        if defined.insert(name, args).is_some() {
            return Err(format!("--variant {name} is given twice"));
        }
    }
    for s in systems.iter_mut() {
        if let Some(v) = &s.variant {
            let Some(args) = defined.get(v.as_str()) else {
                return Err(format!(
                    "{s} is listed but there is no --variant {v}='ARGS' for it"
                ));
            };
            s.args = (*args).clone();
        }
    }
    for name in defined.keys() {
        if !systems.iter().any(|s| s.variant.as_deref() == Some(*name)) {
            return Err(format!(
                "--variant {name} is defined but vxswitch:{name} is not in --systems"
            ));
        }
    }
    Ok(())
}

/// Splits a string into words as a POSIX shell does, without expansions: blanks separate
/// words; 'single quotes' keep everything literally; "double quotes" keep everything but a
/// backslash before `"`, `\`, `$` or a backtick; a backslash outside quotes keeps the next
/// character. An unterminated quote is an error.
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("{s:?}: a ' without its closing '")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("{s:?}: a \" without its closing \"")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("{s:?}: a \" without its closing \"")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(format!("{s:?}: ends with a lone backslash")),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// The lab name of each system, in order: the prefix and a short tag (`vx`, `k`, `o`, `p`),
/// and for the n-th variant of the list `vx` and n (`bvx1`, `bvx2`): short and distinct, so
/// interface names derived from them stay within 15 characters.
pub fn lab_names(prefix: &str, systems: &[System]) -> Vec<String> {
    let mut n = 0;
    systems
        .iter()
        .map(|s| {
            let tag = match s.kind {
                Kind::Vxswitch => "vx",
                Kind::Kernel => "k",
                Kind::Ovs => "o",
                Kind::Plain => "p",
            };
            match s.variant {
                Some(_) => {
                    n += 1;
                    format!("{prefix}{tag}{n}")
                }
                None => format!("{prefix}{tag}"),
            }
        })
        .collect()
}

/// The two-node, one-pod-each lab every measurement of `system` runs in: the run's own
/// `--switch-arg`s, then the variant's.
#[allow(clippy::too_many_arguments)]
pub fn two_node_lab(
    name: String,
    system: &System,
    port: u16,
    workers: Option<usize>,
    switch_args: &[String],
    tso: bool,
    underlay_offload: bool,
) -> crate::lab::LabSpec {
    crate::lab::LabSpec {
        name,
        nodes: 2,
        pods: 1,
        kinds: vec![system.kind],
        port,
        workers,
        ipv6: false,
        switch_args: switch_args.iter().chain(&system.args).cloned().collect(),
        tso,
        underlay_offload,
        ..crate::lab::LabSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn variant_arguments_split_like_a_shell() {
        assert_eq!(
            shell_split("--underlay-gso udp --spin-us 0").unwrap(),
            words(&["--underlay-gso", "udp", "--spin-us", "0"])
        );
        assert_eq!(shell_split("  ").unwrap(), Vec::<String>::new());
        assert_eq!(
            shell_split(r#"--log 'a b' "c \"d\" \x" e\ f ''"#).unwrap(),
            words(&["--log", "a b", r#"c "d" \x"#, "e f", ""])
        );
        assert_eq!(shell_split("--x='1 2'3").unwrap(), words(&["--x=1 23"]));
        assert!(shell_split("'open").unwrap_err().contains("closing"));
        assert!(shell_split("\"open").unwrap_err().contains("closing"));
        assert!(shell_split("a\\").unwrap_err().contains("backslash"));
    }

    #[test]
    fn variants_are_parsed_and_attached() {
        let (name, args) = parse_variant("udp=--underlay-gso udp --spin-us 0").unwrap();
        assert_eq!(name, "udp");
        assert_eq!(args, words(&["--underlay-gso", "udp", "--spin-us", "0"]));
        assert_eq!(parse_variant("none=").unwrap().1, Vec::<String>::new());
        assert!(parse_variant("udp").unwrap_err().contains("NAME=ARGS"));
        assert!(parse_variant("Udp=x").unwrap_err().contains("a-z"));
        assert!(parse_variant("u='x").unwrap_err().contains("closing"));

        let mut systems = parse_list("vxswitch, vxswitch:udp,kernel,vxswitch:tap").unwrap();
        let names: Vec<String> = systems.iter().map(System::name).collect();
        assert_eq!(
            names,
            ["vxswitch", "vxswitch:udp", "kernel", "vxswitch:tap"]
        );
        let variants = vec![
            parse_variant("udp=--underlay-gso udp").unwrap(),
            parse_variant("tap=--underlay-gso tap --spin-us 20").unwrap(),
        ];
        attach_variants(&mut systems, &variants).unwrap();
        assert_eq!(systems[1].args, words(&["--underlay-gso", "udp"]));
        assert_eq!(systems[3].args.len(), 4);
        assert!(systems[0].args.is_empty() && systems[2].args.is_empty());
        assert_eq!(
            lab_names("b", &systems),
            ["bvx", "bvx1", "bk", "bvx2"],
            "short and distinct"
        );
        for n in lab_names("bb", &systems) {
            crate::lab::topo::validate_name(&n).unwrap();
        }

        let mut s = parse_list("vxswitch:udp").unwrap();
        assert!(attach_variants(&mut s, &[])
            .unwrap_err()
            .contains("no --variant udp"));
        let mut s = parse_list("vxswitch").unwrap();
        assert!(attach_variants(&mut s, &variants[..1])
            .unwrap_err()
            .contains("not in --systems"));
        let mut s = parse_list("vxswitch:udp").unwrap();
        assert!(
            attach_variants(&mut s, &[variants[0].clone(), variants[0].clone()])
                .unwrap_err()
                .contains("twice")
        );
        assert!(parse_list("kernel:x")
            .unwrap_err()
            .contains("only vxswitch"));
        assert!(parse_list("vxswitch:a,vxswitch:a")
            .unwrap_err()
            .contains("twice"));
        assert!(parse_list("vxswitch:")
            .unwrap_err()
            .contains("variant name"));
        assert!(parse_list("vxswich").is_err());
    }
}
