//! What the processes of a watched unit hold and read: the sockets and pipes among
//! their descriptors (`/proc/PID/fd`, links only, never the objects) and their read
//! counters (`/proc/PID/io`). One reader, relative to one open /proc, one reused
//! buffer; every read bounded. A process that vanished between two reads is simply not
//! there (None, or nothing held).

use crate::core::activity::{self, Io, Object};
use crate::sys::procfs::{push_decimal, read_at};
use nix::dir::Dir;
use nix::fcntl::{readlinkat, OFlag};
use nix::sys::stat::Mode;
use std::ffi::CStr;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

/// A process's descriptors looked at, at most: a server holds a few dozen.
pub const FDS_MAX: usize = 1024;
/// The longest `/proc/PID/io` read: seven short lines.
const IO_MAX: usize = 512;

pub struct Reader {
    proc_dir: File,
    buf: Vec<u8>,
    path: Vec<u8>,
}

impl Reader {
    pub fn new() -> Option<Reader> {
        Some(Reader {
            proc_dir: File::open("/proc").ok()?,
            buf: vec![0; 256],
            path: Vec::with_capacity(32),
        })
    }

    /// The read counters of `pid`; None when unreadable: gone, or no ptrace rights over
    /// it (another user).
    pub fn io(&mut self, pid: i32) -> Option<Io> {
        let path = proc_path(&mut self.path, pid, b"io")?;
        let len = read_at(self.proc_dir.as_fd(), path, &mut self.buf).ok()?;
        // Seven short lines: a buffer a strange file grew past that is given back.
        if self.buf.len() > IO_MAX {
            self.buf.truncate(IO_MAX);
            self.buf.shrink_to(IO_MAX);
        }
        activity::parse_io(&self.buf[..len.min(IO_MAX)])
    }

    /// The sockets and pipes `pid` holds, by descriptor, lowest first: at most `FDS_MAX`
    /// descriptors are looked at. Empty when unreadable (gone, another user's).
    pub fn held(&mut self, pid: i32) -> Vec<(i32, Object)> {
        let fds: Vec<i32> = {
            let Some(path) = proc_path(&mut self.path, pid, b"fd") else {
                return Vec::new();
            };
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
            let Ok(mut dir) = Dir::openat(self.proc_dir.as_fd(), path, flags, Mode::empty()) else {
                return Vec::new();
            };
            dir.iter()
                .map_while(Result::ok)
                .take(FDS_MAX + 2)
                .filter_map(|e| e.file_name().to_str().ok()?.parse().ok())
                .take(FDS_MAX)
                .collect()
        };
        let mut held: Vec<(i32, Object)> = Vec::new();
        let mut name = Vec::with_capacity(16);
        for fd in fds {
            name.clear();
            name.extend_from_slice(b"fd/");
            push_decimal(&mut name, fd.unsigned_abs());
            let Some(path) = proc_path(&mut self.path, pid, &name) else {
                continue;
            };
            // The kernel bounds a link's text (PATH_MAX); a socket's or pipe's is short.
            if let Ok(link) = readlinkat(self.proc_dir.as_fd(), path) {
                if let Some(object) = activity::object(link.as_bytes()) {
                    held.push((fd, object));
                }
            }
        }
        held.sort_unstable_by_key(|&(fd, _)| fd);
        held
    }
}

/// `PID/<name>` as a C path relative to /proc, built in `buf`.
fn proc_path<'a>(buf: &'a mut Vec<u8>, pid: i32, name: &[u8]) -> Option<&'a CStr> {
    buf.clear();
    push_decimal(buf, pid.unsigned_abs());
    buf.push(b'/');
    buf.extend_from_slice(name);
    buf.push(0);
    CStr::from_bytes_with_nul(buf).ok()
}
