//! Service names: what a process is called in events and the service map. `ADI_PROFILE_NAME`
//! when the process sets it; else the program's own name: the executable's file name, or,
//! for an interpreter (Python, Node.js, Ruby, Java, Perl, PHP, ...), the script, module
//! (`python -m`) or jar it runs, without its extension. The container's service will come
//! before the program's name once containers are resolved.

/// Interpreters whose first operand, not their own name, names the service.
const INTERPRETERS: [&str; 10] = [
    "python", "node", "nodejs", "ruby", "java", "perl", "php", "bun", "deno", "pypy",
];

/// File extensions dropped from a script's name.
const SCRIPT_EXTENSIONS: [&str; 10] = [
    ".py", ".js", ".mjs", ".cjs", ".ts", ".rb", ".pl", ".php", ".jar", ".class",
];

/// Options of those interpreters that take the next argument as their value.
const OPTIONS_WITH_VALUE: [&str; 12] = [
    "-X",
    "-W",
    "-r",
    "--require",
    "-I",
    "-e",
    "-cp",
    "-classpath",
    "--class-path",
    "-p",
    "--import",
    "--loader",
];

/// `ADI_PROFILE_NAME`'s value in a raw `/proc/PID/environ` (the last one counts), if non-empty.
pub fn profile_name(environ: &[u8]) -> Option<String> {
    environ
        .rsplit(|&b| b == 0)
        .find_map(|var| var.strip_prefix(b"ADI_PROFILE_NAME="))
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The file name of a path (`/usr/bin/python3` → `python3`).
fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether `name` is an interpreter: `python3.11` and `node20` count as `python` and `node`.
fn is_interpreter(name: &str) -> bool {
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    INTERPRETERS.contains(&stem)
}

fn without_extension(name: &str) -> &str {
    SCRIPT_EXTENSIONS
        .iter()
        .find_map(|ext| name.strip_suffix(ext).filter(|s| !s.is_empty()))
        .unwrap_or(name)
}

/// The program's own name from its arguments (`argv[0]` first), else `comm`.
pub fn program_name(args: &[String], comm: &str) -> String {
    // A program that rewrote its title (`postgres: user db 127.0.0.1(4242) idle`, `nginx:
    // worker process`) no longer names itself in argv[0]: the kernel's comm does.
    // A process title (nginx's `nginx: master process ...`, postgres's) is not a path: the
    // comm names the program better than any part of it.
    let Some(argv0) = args
        .first()
        .filter(|a| !a.is_empty() && !a.contains([' ', ':']))
        .map(|a| base(a))
        .filter(|a| !a.is_empty())
    else {
        return comm.to_owned();
    };
    if !is_interpreter(argv0) {
        return argv0.to_owned();
    }
    let mut rest = args[1..].iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            // `python -m pkg.mod`: the module; `java -jar app.jar`: the jar.
            "-m" | "-jar" => {
                return rest.next().map_or_else(
                    || argv0.to_owned(),
                    |m| without_extension(base(m)).to_owned(),
                );
            }
            // `python -c code`: no name better than the interpreter's.
            "-c" => return argv0.to_owned(),
            a if OPTIONS_WITH_VALUE.contains(&a) => {
                rest.next();
            }
            a if a.starts_with('-') => {}
            script => return without_extension(base(script)).to_owned(),
        }
    }
    argv0.to_owned()
}

/// A process's service name: `ADI_PROFILE_NAME` from its environment when set, else its
/// program's name.
pub fn service_name(environ: Option<&[u8]>, args: &[String], comm: &str) -> String {
    service_name_in(environ, None, args, comm)
}

/// The same for a process in a container: `ADI_PROFILE_NAME`, else the container's service
/// (its compose service, Kubernetes container or name), else the program's name.
pub fn service_name_in(
    environ: Option<&[u8]>,
    container: Option<&str>,
    args: &[String],
    comm: &str,
) -> String {
    environ
        .and_then(profile_name)
        .or_else(|| container.filter(|c| !c.is_empty()).map(str::to_owned))
        .unwrap_or_else(|| program_name(args, comm))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn programs_and_interpreters() {
        for (line, name) in [
            ("/usr/sbin/nginx -g daemon off;", "nginx"),
            ("/usr/bin/python3 /app/server.py --port 9080", "server"),
            ("python3.11 -u -X dev /srv/reviews.py", "reviews"),
            ("python3 -m http.server 8000", "http.server"),
            ("python3 -c print(1)", "python3"),
            ("node --require ./otel.js /app/index.mjs", "index"),
            ("java -Xmx1g -cp lib/* -jar /opt/ratings.jar", "ratings"),
            ("java -cp app.jar com.example.Main", "com.example.Main"),
            ("ruby bin/rails server", "rails"),
            ("/usr/lib/postgresql/15/bin/postgres -D /data", "postgres"),
            ("python3", "python3"),
        ] {
            assert_eq!(program_name(&args(line), "comm"), name, "{line}");
        }
        assert_eq!(program_name(&[], "kworker"), "kworker");
        let title = args("postgres: postgres postgres 127.0.0.1(41234) idle");
        assert_eq!(program_name(&title, "postgres"), "postgres");
        // nginx writes its title over argv: /proc/PID/cmdline is one string.
        let title = ["nginx: master process nginx -c /tmp/x/nginx.conf".to_owned()];
        assert_eq!(program_name(&title, "nginx"), "nginx");
    }

    #[test]
    fn profile_name_wins() {
        let env = b"PATH=/bin\0ADI_PROFILE=dev\0ADI_PROFILE_NAME=reviews\0";
        assert_eq!(
            service_name(Some(env), &args("python3 app.py"), "python3"),
            "reviews"
        );
        let empty = b"ADI_PROFILE_NAME=\0";
        assert_eq!(
            service_name(Some(empty), &args("python3 app.py"), "python3"),
            "app"
        );
        assert_eq!(
            service_name(None, &args("python3 app.py"), "python3"),
            "app"
        );
    }
}
