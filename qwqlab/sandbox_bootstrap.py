"""The Python every sandboxed process runs first (``qwqlab.sandbox``), as text passed with ``-c``.

It defines the fallback's audit hook (``_install``) and ``_qwqlab_main`` (run ``main.py`` as a
fresh ``__main__``), caps processes, writes the start marker; a mode's code follows it.
"""

# The program's first Python, passed with -c (argv: audit hook 0/1, the start-marker fd, the
# process cap). It caps the run's processes (RLIMIT_NPROC, counted per user namespace under
# bwrap, so as any user), writes one byte to the start marker (the parent's proof that the
# sandbox came up: without it a failed run is the machine's failure, not the program's),
# installs the fallback's audit hook if asked, then the mode's code runs (RUN: main.py as a
# fresh __main__ module; qwqlab.code_tests adds a serving and a judging mode).
BOOTSTRAP = r"""
import os, sys

def _install(ROOT):
    W = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    realpath, fspath, sep, isinstance_, int_, str_, bytes_ = os.path.realpath, os.fspath, os.sep, isinstance, int, str, bytes
    PATH_EVENTS = (("os.remove", (0,)), ("os.rmdir", (0,)), ("os.mkdir", (0,)), ("os.chmod", (0,)),
                   ("os.chown", (0,)), ("os.truncate", (0,)), ("os.utime", (0,)), ("os.rename", (0, 1)),
                   ("os.link", (0, 1)), ("os.symlink", (1,)), ("shutil.rmtree", (0,)), ("os.mkfifo", (0,)),
                   ("os.mknod", (0,)), ("os.setxattr", (0,)), ("os.removexattr", (0,)))
    BLOCKED = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
               "os.forkpty", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill", "ctypes.",
               "socket.", "gc.get_objects", "gc.get_referrers", "gc.get_referents", "webbrowser.open",
               "sys.settrace", "sys.setprofile", "_imp.create_dynamic")

    def inside(path):
        if isinstance_(path, int_):
            return True  # an already open descriptor
        p = fspath(path)
        if isinstance_(p, bytes_):
            p = p.decode("utf-8", "surrogateescape")
        full = realpath(p)
        return full == ROOT or full.startswith(ROOT + sep)

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (isinstance_(mode, str_) and any(c in mode for c in "wax+")) or \
                (isinstance_(flags, int_) and flags & W)
            if writing and path is not None and not inside(path):
                raise PermissionError("qwqlab sandbox: write outside the working directory: " + repr(path))
        elif event.startswith(BLOCKED) or (event == "import" and args[0] in ("_posixsubprocess", "_ctypes")):
            raise PermissionError("qwqlab sandbox: " + event + " is not allowed")
        elif event == "object.__setattr__" and args[1] == "__code__":
            raise PermissionError("qwqlab sandbox: replacing a function's code is not allowed")
        elif event == "object.__getattr__" and args[1] in ("tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"):
            raise PermissionError("qwqlab sandbox: frame access is not allowed")
        elif event.startswith(("os.", "shutil.")):
            for name, positions in PATH_EVENTS:
                if event == name:
                    for i in positions:
                        if i < len(args) and args[i] is not None and not inside(args[i]):
                            raise PermissionError("qwqlab sandbox: " + event + " outside the working directory: " + repr(args[i]))

    sys.addaudithook(hook)

def _qwqlab_start(sys, os):
    hook, marker, nproc = sys.argv[1:4]
    del sys.argv[1:4]
    import resource
    resource.setrlimit(resource.RLIMIT_NPROC, (int(nproc), int(nproc)))
    os.write(int(marker), b"S")
    os.close(int(marker))
    if hook == "1":
        _install(os.path.realpath(os.getcwd()))

def _qwqlab_main(sys, os):
    import builtins
    path = os.path.join(os.getcwd(), "main.py")
    with open("main.py", encoding="utf-8", errors="replace") as f:
        code = compile(f.read(), "main.py", "exec")
    main = type(sys)("__main__")
    main.__file__, main.__builtins__ = path, builtins
    sys.modules["__main__"] = main
    sys.argv[0] = path
    exec(code, main.__dict__)
    return main

_qwqlab_start(sys, os)
del _qwqlab_start, _install
"""
#: The run mode: the program, and nothing after it.
RUN = "_qwqlab_main(sys, os)\n"
