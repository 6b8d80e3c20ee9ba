//! Small helpers around raw syscalls.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Turns a -1 return into the thread's `errno` as an `io::Error`.
#[inline]
pub fn cvt<T: PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Like [`cvt`], retrying while the call was interrupted by a signal.
#[inline]
pub fn cvt_retry<T: PartialEq + From<i8>>(mut f: impl FnMut() -> T) -> io::Result<T> {
    loop {
        match cvt(f()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// `setsockopt` of an integer option.
pub fn setsockopt_int(fd: BorrowedFd<'_>, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: `fd` is a live descriptor for the duration of the borrow; we pass a pointer to a
    // local i32 and its exact size, which is what integer socket options expect.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// `getsockopt` of an integer option.
pub fn getsockopt_int(fd: BorrowedFd<'_>, level: i32, name: i32) -> io::Result<i32> {
    let mut value: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes and `len` holds the size of `value`.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut i32).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// Pins the calling thread to one CPU.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU {cpu} out of range"),
        ));
    }
    // SAFETY: cpu_set_t is plain data; all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above), so CPU_SET stays inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t and its exact size is passed; pid 0 is this thread.
    cvt(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) })?;
    Ok(())
}

/// Sets the calling thread's nice value (-20 to 19; below 0 needs CAP_SYS_NICE).
pub fn set_thread_nice(nice: i32) -> io::Result<()> {
    // SAFETY: gettid has no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    // SAFETY: plain integer arguments; on Linux PRIO_PROCESS with a thread id sets that
    // thread's nice value alone.
    cvt(unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) })?;
    Ok(())
}

/// Raises this process's soft limit on open files (`RLIMIT_NOFILE`) to its hard limit;
/// returns (soft before, soft now).
pub fn raise_nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into `lim`, a live local of the right type.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads one rlimit from `lim`, a live local of the right type.
        cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    }
    Ok((before, lim.rlim_cur))
}

/// This process's soft limit on open files (`RLIMIT_NOFILE`).
pub fn nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into `lim`, a live local of the right type.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    Ok(lim.rlim_cur)
}

/// Opens `path` for appending (creating it, mode 0640) and points this process's stdout and
/// stderr at it, so every later log line lands there; called at start and again on SIGHUP,
/// after a log rotation renamed the file.
pub fn redirect_output(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)?;
    for target in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: dup2 takes two descriptor numbers and touches no memory of ours; `file` is
        // open for the duration of the call, and the targets are the standard descriptors,
        // which this process owns (replacing them closes their previous file atomically).
        cvt_retry(|| unsafe { libc::dup2(file.as_raw_fd(), target) })?;
    }
    Ok(())
}

/// Takes a POSIX write lock (`fcntl(F_SETLK)`) on the whole of `file`, the way OVS locks its
/// pidfiles: `ovs-appctl` believes a pidfile only while the process named in it holds this
/// lock. The lock lasts as long as this process keeps `file` open, and closing any other
/// descriptor of the same file would release it, so the file must be opened only once.
pub fn lock_whole_file(file: &std::fs::File) -> io::Result<()> {
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are a valid value.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: fcntl(F_SETLK) reads one `flock` from the pointer, which points to a live local
    // of the right type; the descriptor is open for the duration of the call.
    cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) })?;
    Ok(())
}
