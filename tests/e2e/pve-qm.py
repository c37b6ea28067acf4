#!/usr/bin/python3
"""Stand-in for Proxmox VE's `qm` on an emulated node (tests/e2e/e2e-proxmox.sh).

Proxmox VE is not in Debian; this does what qemu-server does, around the real qemu, for what the
test needs (facts from qemu-server 9.x and ../shared/DESIGN.md §5):

  qm config VMID
  qm set VMID [--KEY VALUE]... [--delete KEY[,KEY...]] [--skiplock 1]
                                           (hookscript checked as qemu-server does)
  qm start VMID [--migratedfrom NODE [--migration_type secure|insecure]]
                                           target of a migration: secure (Proxmox's default),
                                           -incoming unix:<run>/<vmid>.migrate -S; insecure,
                                           -incoming defer -S, then QMP migrate-incoming
                                           tcp:127.0.0.1:PORT; then post-start
  qm stop VMID [--migratedfrom NODE]       QMP quit, bounded wait, SIGKILL; the scope goes
  qm resume VMID                           QMP cont
  qm unlock VMID                           the config's lock: line removed
  qm suspend VMID --todisk 1               hibernation: lock suspending, the state saved into the
                                           local storage (vmstate:; QMP migrate to a file, as
                                           pve-qemu's savevm-start), quit, lock suspended; the next
                                           qm start loads it before post-start (-loadstate, here
                                           -incoming from the file) and fails if qemu refuses it
  qm migrate VMID TARGET [--online 1] [--migration_type secure|insecure]
                                           as QemuMigrate drives it: `qm start --migratedfrom` on
                                           the target; secure: the target's unix socket forwarded
                                           to the same path here (ssh -L; here a relay through
                                           the node's command runner); QMP migrate,
                                           query-migrate until done, config moved, `qm resume`
                                           there, source stopped
  qm pid VMID                              (emulation's own) the running qemu's pid, or exit 1

Environment (set by the node's `qm` wrapper): PVE_ETC (the cluster file system, /etc/pve; its
local/ is this node's nodes/<hostname>), PVE_E2E_NODES (a directory with one executable per node,
NODES/<node>, that runs a command on that node: the emulation's ssh), PVE_E2E_KVM (/usr/bin/kvm).
The node's name is its hostname; its run dir /var/run/qemu-server; its cgroup v2 view
/sys/fs/cgroup, where each qemu is born in qemu.slice/<vmid>.scope.

Every verb that changes a VM runs under the VM's lock as qemu-server's do: an exclusive flock on
/var/lock/qemu-server/lock-<vmid>.conf (PVE::QemuConfig->lock_config through
PVE::Tools::lock_file_full: the file opened for appending, created; waited for up to 10 s, then
"can't lock file"), the node's own (/var/lock is in the node's /run). `qm migrate` holds the
source's for the whole migration (PVE::AbstractMigrate::migrate, lock_vm) and keeps
`lock: migrate` in the config meanwhile; `qm start` holds the node's own around the start and its
hooks (vm_start); `qm suspend` only around its config writes (RunState::vm_suspend), with
`lock: suspending` in between. The lock is reentrant within one process, as lock_file_full's.
"""
import fcntl
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmp import QMP, QMPError, listen_unix  # noqa: E402

ETC = os.environ.get("PVE_ETC", "/etc/pve")
NODES = os.environ.get("PVE_E2E_NODES", "")
KVM = os.environ.get("PVE_E2E_KVM", "/usr/bin/kvm")
RUN = "/var/run/qemu-server"
CGROUP = "/sys/fs/cgroup"
LOCK_DIR = "/var/lock/qemu-server"


class Fail(Exception):
    pass


def nodename():
    return socket.gethostname()


_held = {}  # vmid: depth; lock_file_full's per-process lock hash


class lock_config:
    """with lock_config(vmid): PVE::QemuConfig->lock_config (10 s, exclusive)."""

    def __init__(self, vmid, timeout=10):
        self.vmid, self.timeout, self.fd = str(vmid), timeout, None

    def __enter__(self):
        if _held.get(self.vmid):
            _held[self.vmid] += 1
            return self
        os.makedirs(LOCK_DIR, exist_ok=True)
        path = os.path.join(LOCK_DIR, "lock-%s.conf" % self.vmid)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        end = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= end:
                    os.close(self.fd)
                    raise Fail("can't lock file '%s' - got timeout" % path)
                time.sleep(0.05)
        _held[self.vmid] = 1
        return self

    def __exit__(self, *exc):
        _held[self.vmid] -= 1
        if _held[self.vmid] == 0:
            del _held[self.vmid]
            os.close(self.fd)
        return False


def conf_path(vmid, node=None):
    if node is None:
        return os.path.join(ETC, "local", "qemu-server", "%s.conf" % vmid)
    return os.path.join(ETC, "nodes", node, "qemu-server", "%s.conf" % vmid)


def load_conf(path):
    """The current section of a qemu-server config: {key: value}, in order (snapshots ignored)."""
    conf = {}
    try:
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if line.startswith("["):
                    break
                if not line.strip() or line.startswith("#"):
                    continue
                m = re.match(r"^([a-z][a-z0-9_-]*):\s*(.*)$", line)
                if not m:
                    raise Fail("%s: unable to parse line: %s" % (path, line))
                conf[m.group(1)] = m.group(2)
    except FileNotFoundError:
        raise Fail("Configuration file '%s' does not exist" % path)
    return conf


def write_conf(path, conf):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        for k, v in conf.items():
            f.write("%s: %s\n" % (k, v))
    os.rename(tmp, path)


def storages():
    """storage.cfg: {name: path} of the directory storages."""
    res, cur = {}, None
    with open(os.path.join(ETC, "storage.cfg")) as f:
        for line in f:
            m = re.match(r"^(\w+):\s*(\S+)", line)
            if m:
                cur = m.group(2) if m.group(1) == "dir" else None
                continue
            m = re.match(r"^\s+path\s+(\S+)", line)
            if m and cur:
                res[cur] = m.group(1)
    return res


def hookscript_path(volid):
    """PVE::GuestHelpers::check_hookscript."""
    m = re.match(r"^([a-zA-Z][\w.-]*):(snippets/.+)$", volid)
    if not m:
        raise Fail("'%s' is not in the snippets directory" % volid)
    stores = storages()
    if m.group(1) not in stores:
        raise Fail("storage '%s' does not exist" % m.group(1))
    path = os.path.join(stores[m.group(1)], m.group(2))
    if not os.path.isfile(path):
        raise Fail("script '%s' does not exist" % volid)
    if not os.access(path, os.X_OK):
        raise Fail("script '%s' is not executable" % volid)
    return path


def exec_hookscript(conf, vmid, phase, stop_on_error):
    """PVE::GuestHelpers::exec_hookscript: only pre-start stops the start on an error."""
    if not conf.get("hookscript"):
        return
    try:
        path = hookscript_path(conf["hookscript"])
        t = time.monotonic()
        r = subprocess.run([path, str(vmid), phase], timeout=300)
        # (the emulation's own line: the test reads how long a hook took)
        sys.stderr.write("hookscript %s %s %s: exit %d after %.3f s\n"
                         % (conf["hookscript"], vmid, phase, r.returncode, time.monotonic() - t))
        if r.returncode != 0:
            raise Fail("command '%s %s %s' failed: exit code %d" % (path, vmid, phase, r.returncode))
    except (Fail, OSError, subprocess.TimeoutExpired) as e:
        msg = "hookscript error for %s on %s: %s" % (vmid, phase, e)
        if stop_on_error:
            raise Fail(msg)
        sys.stderr.write("%s\n" % msg)


def pidfile(vmid):
    return os.path.join(RUN, "%s.pid" % vmid)


def qmp_socket(vmid):
    return os.path.join(RUN, "%s.qmp" % vmid)


def running_pid(vmid):
    """The pid of the VM's qemu on this node, as qemu-server checks it (pid file, cmdline)."""
    try:
        with open(pidfile(vmid)) as f:
            pid = int(f.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            args = f.read().split(b"\0")
    except (OSError, ValueError):
        return None
    if pidfile(vmid).encode() not in args:
        return None
    return pid


def scope_dir(vmid):
    return os.path.join(CGROUP, "qemu.slice", "%s.scope" % vmid)


def remove_scope(vmid):
    """What systemd does with an empty transient scope."""
    d = scope_dir(vmid)
    for _ in range(50):
        try:
            os.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)


def kvm_cmdline(vmid, conf, incoming):
    """config_to_command, for the keys the emulated VMs use."""
    name = conf.get("name", "vm%s" % vmid)
    cores = int(conf.get("cores", "1")) * int(conf.get("sockets", "1"))
    cmd = [
        KVM,
        "-name", "%s,debug-threads=on" % name,
        "-no-shutdown",
        "-chardev", "socket,id=qmp,path=%s,server=on,wait=off" % qmp_socket(vmid),
        "-mon", "chardev=qmp,mode=control",
        "-chardev", "socket,id=qmp-event,path=/var/run/qmeventd.sock,reconnect=5",
        "-mon", "chardev=qmp-event,mode=control",
        "-pidfile", pidfile(vmid),
        "-daemonize",
    ]
    if "smbios1" in conf:
        cmd += ["-smbios", "type=1,%s" % conf["smbios1"]]
    cmd += [
        "-smp", "%d,sockets=1,cores=%d,maxcpus=%d" % (cores, cores, cores),
        "-nodefaults",
        "-boot", "menu=on,strict=on,reboot-timeout=1000",
        "-vnc", "unix:%s/%s.vnc,password=on" % (RUN, vmid),
        # kvm64 without enforce and the kvm_pv_* flags: this qemu runs under TCG
        "-cpu", "kvm64,+lahf_lm,+sep",
        "-m", conf.get("memory", "512"),
        "-global", "PIIX4_PM.disable_s3=1",
        "-global", "PIIX4_PM.disable_s4=1",
        "-device", "pci-bridge,id=pci.1,chassis_nr=1,bus=pci.0,addr=0x1e",
        "-device", "pci-bridge,id=pci.2,chassis_nr=2,bus=pci.0,addr=0x1f",
    ]
    if conf.get("agent", "0").split(",")[0] in ("1", "enabled=1"):
        cmd += [
            "-chardev", "socket,path=%s/%s.qga,server=on,wait=off,id=qga0" % (RUN, vmid),
            "-device", "virtio-serial,id=qga0,bus=pci.0,addr=0x8",
            "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
        ]
    if conf.get("balloon", "1") != "0":
        cmd += ["-device", "virtio-balloon-pci,id=balloon0,bus=pci.0,addr=0x3,free-page-reporting=on"]
    # Proxmox's type is pc+pveN, a patch upstream qemu lacks; "kvm: 0" is TCG
    cmd += ["-machine", "accel=tcg,type=pc" if conf.get("kvm", "1") == "0" else "type=pc"]
    if "args" in conf:
        cmd += shlex.split(conf["args"])
    if incoming:
        cmd += ["-incoming", incoming, "-S"]
    return cmd


def free_migrate_port():
    for port in range(60000, 60050):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise Fail("unable to find free migration port")


def vmstate_path(volid):
    storage, name = volid.split(":", 1)
    return os.path.join(storages()[storage], "images", name)


def migrate_socket(vmid):
    return os.path.join(RUN, "%s.migrate" % vmid)


def qm_start(vmid, migratedfrom=None, migration_type="secure"):
    path = conf_path(vmid, migratedfrom)
    conf = load_conf(path)
    statefile = conf.get("vmstate") if conf.get("lock") == "suspended" else None
    if conf.get("lock") and not migratedfrom and not statefile:
        raise Fail("VM is locked (%s)" % conf["lock"])
    if running_pid(vmid):
        raise Fail("VM %s already running" % vmid)
    if migratedfrom:
        os.environ["PVE_MIGRATED_FROM"] = migratedfrom
    exec_hookscript(conf, vmid, "pre-start", True)
    os.makedirs(RUN, exist_ok=True)
    remove_scope(vmid)  # qemu-server stops a left-over scope first
    os.makedirs(scope_dir(vmid))
    incoming = None
    if migratedfrom and migration_type == "secure":
        # StateFile::statefile_cmdline_option, 'unix': the socket the ssh tunnel forwards to
        try:
            os.unlink(migrate_socket(vmid))
        except OSError:
            pass
        incoming = "unix:%s" % migrate_socket(vmid)
    elif migratedfrom:
        incoming = "defer"  # 'tcp': the port is given over QMP later
    cmd = kvm_cmdline(vmid, conf, incoming)
    if statefile:
        # pve-qemu's -loadstate: the state loads before the VM runs, before post-start
        print("Resuming suspended VM", flush=True)
        cmd += ["-incoming", "exec:cat %s" % shlex.quote(vmstate_path(statefile))]
    # qemu-server creates the scope over D-Bus and execs kvm in it
    r = subprocess.run(["/bin/sh", "-c", 'echo $$ >"$0/cgroup.procs" && exec "$@"', scope_dir(vmid)]
                       + cmd, timeout=60)
    if r.returncode != 0:
        remove_scope(vmid)
        raise Fail("start failed: QEMU exited with code %d" % r.returncode)
    if statefile:
        status = "inmigrate"
        end = time.monotonic() + 60
        while status == "inmigrate" and time.monotonic() < end:
            time.sleep(0.05)
            try:
                with QMP(qmp_socket(vmid)) as q:
                    status = q.cmd("query-status").get("status", "")
            except (QMPError, OSError):
                status = "gone"
        if status != "running":
            qm_cleanup(vmid)
            raise Fail("start failed: QEMU could not load the state %s (%s)" % (statefile, status))
        os.unlink(vmstate_path(statefile))
        c = load_conf(path)
        for k in ("vmstate", "lock", "runningmachine"):
            c.pop(k, None)
        write_conf(path, c)
    if migratedfrom and migration_type == "secure":
        print("migration listens on %s" % incoming, flush=True)
    elif migratedfrom:
        port = free_migrate_port()
        uri = "tcp:127.0.0.1:%d" % port
        with QMP(qmp_socket(vmid)) as q:
            q.cmd("migrate-incoming", {"uri": uri})
        print("migration listens on %s" % uri, flush=True)
    exec_hookscript(conf, vmid, "post-start", False)


def qm_stop(vmid, migratedfrom=None, timeout=10):
    if not migratedfrom:
        conf = load_conf(conf_path(vmid))
        exec_hookscript(conf, vmid, "pre-stop", True)
    else:
        conf = {}
    pid = running_pid(vmid)
    if pid:
        try:
            with QMP(qmp_socket(vmid)) as q:
                q.cmd("quit")
        except (QMPError, OSError):
            pass
        end = time.monotonic() + timeout
        while os.path.exists("/proc/%d" % pid) and time.monotonic() < end:
            time.sleep(0.05)
        if os.path.exists("/proc/%d" % pid):
            os.kill(pid, signal.SIGKILL)
            while os.path.exists("/proc/%d" % pid):
                time.sleep(0.05)
    qm_cleanup(vmid)
    if not migratedfrom:
        exec_hookscript(conf, vmid, "post-stop", False)


def qm_cleanup(vmid):
    """What qmeventd's `qm cleanup` removes after a qemu exited: its scope and run files."""
    remove_scope(vmid)
    for ext in ("pid", "qmp", "qga", "vnc"):
        try:
            os.unlink(os.path.join(RUN, "%s.%s" % (vmid, ext)))
        except OSError:
            pass


def qm_suspend_todisk(vmid):
    """RunState::vm_suspend with includestate."""
    path = conf_path(vmid)
    volid = "local:%s/vm-%s-state-suspend.raw" % (vmid, vmid)
    state = vmstate_path(volid)
    with lock_config(vmid):
        conf = load_conf(path)
        if conf.get("lock"):
            raise Fail("VM is locked (%s)" % conf["lock"])
        pid = running_pid(vmid)
        if not pid:
            raise Fail("VM %s not running" % vmid)
        os.makedirs(os.path.dirname(state), exist_ok=True)
        conf["lock"] = "suspending"
        conf["vmstate"] = volid
        write_conf(path, conf)
    with QMP(qmp_socket(vmid)) as q:
        q.cmd("migrate", {"uri": "exec:cat > %s" % shlex.quote(state)})
        end = time.monotonic() + 120
        status = ""
        while time.monotonic() < end:
            st = q.cmd("query-migrate")
            status = st.get("status", "")
            if status in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.1)
        if status != "completed":
            raise Fail("savevm failed: %s" % status)
        print("State saved, quitting", flush=True)
        try:
            q.cmd("quit")
        except (QMPError, OSError):
            pass
    while os.path.exists("/proc/%d" % pid):
        time.sleep(0.05)
    with lock_config(vmid):
        conf = load_conf(path)
        conf["lock"] = "suspended"
        write_conf(path, conf)
    # qmeventd's `qm cleanup`
    qm_cleanup(vmid)
    exec_hookscript(conf, vmid, "post-stop", False)


def qm_resume(vmid):
    with QMP(qmp_socket(vmid)) as q:
        q.cmd("cont")


def on_node(node, *args, **kw):
    """The emulation's ssh: a command on another node."""
    return subprocess.run([os.path.join(NODES, node)] + list(args), **kw)


# The far end of the emulated `ssh -L`: its stdin and stdout to a unix socket on the target.
TUNNEL_END = r"""
import os, socket, sys, threading
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
def down():
    while True:
        b = s.recv(65536)
        if not b:
            break
        while b:
            b = b[os.write(1, b):]
    os.close(1)
t = threading.Thread(target=down)
t.start()
while True:
    b = os.read(0, 65536)
    if not b:
        break
    s.sendall(b)
s.shutdown(socket.SHUT_WR)
t.join()
"""


def open_tunnel(vmid, target):
    """QemuMigrate's fork_tunnel with a unix socket forward: this node's <run>/<vmid>.migrate
    reaches the target's, through the node runner (the emulation's ssh); one connection."""
    path = migrate_socket(vmid)
    srv = listen_unix(path, 1)

    def serve():
        conn, _ = srv.accept()
        p = subprocess.Popen([os.path.join(NODES, target), sys.executable, "-c", TUNNEL_END, path],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)

        def up():  # the source's stream to the target
            try:
                while True:
                    b = conn.recv(65536)
                    if not b:
                        break
                    p.stdin.write(b)
            except OSError:
                pass
            p.stdin.close()

        t = threading.Thread(target=up)
        t.start()
        try:
            while True:  # and back
                b = p.stdout.read(65536)
                if not b:
                    break
                conn.sendall(b)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        t.join()
        conn.close()
        p.wait()

    threading.Thread(target=serve, daemon=True).start()
    return srv, path


def qm_migrate(vmid, target, migration_type="secure"):
    """QemuMigrate, online, no local disks; secure (a unix socket forwarded to the target's, as
    over ssh) or insecure (tcp). Prints its steps' timings."""
    src = nodename()
    t0 = time.monotonic()
    path = conf_path(vmid)
    conf = load_conf(path)
    if not running_pid(vmid):
        raise Fail("VM %s not running" % vmid)
    conf["lock"] = "migrate"
    write_conf(path, conf)

    def unlock(p):
        c = load_conf(p)
        c.pop("lock", None)
        write_conf(p, c)

    # phase2: the target, started from the config that is still on this node
    r = on_node(target, "qm", "start", str(vmid), "--migratedfrom", src, "--migration_type",
                migration_type, stdout=subprocess.PIPE, universal_newlines=True, timeout=120)
    sys.stdout.write(r.stdout)
    m = re.search(r"^migration listens on (tcp:[\d.]+:\d+|unix:\S+)$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        unlock(path)
        raise Fail("migration aborted: target 'qm start' failed (exit %d)" % r.returncode)
    t_started = time.monotonic()
    print("target started in %.2f s" % (t_started - t0), flush=True)
    uri, tunnel = m.group(1), None
    if uri.startswith("unix:"):
        tunnel, local = open_tunnel(vmid, target)
        uri = "unix:%s" % local
        print("tunnel %s -> %s:%s" % (local, target, m.group(1)[5:]), flush=True)
    status, err = "failed", ""
    try:
        with QMP(qmp_socket(vmid)) as q:
            q.cmd("migrate", {"uri": uri})
            end = time.monotonic() + 120
            while time.monotonic() < end:
                st = q.cmd("query-migrate")
                status, err = st.get("status", ""), st.get("error-desc", "")
                if status in ("completed", "failed", "cancelled"):
                    break
                time.sleep(0.1)
    except (QMPError, OSError) as e:
        err = str(e)
    t_sent = time.monotonic()
    print("migration status %s after %.2f s %s" % (status, t_sent - t_started, err), flush=True)
    if tunnel:
        tunnel.close()
        try:
            os.unlink(migrate_socket(vmid))
        except OSError:
            pass
    if status != "completed":
        # phase2_cleanup: cancel here, stop the target; the source goes on
        try:
            with QMP(qmp_socket(vmid)) as q:
                q.cmd("migrate_cancel")
        except (QMPError, OSError):
            pass
        on_node(target, "qm", "stop", str(vmid), "--migratedfrom", src, timeout=60)
        unlock(path)
        raise Fail("migration problems: %s" % (err or status))
    # phase3_cleanup: the config moves, the target resumes, the source stops
    dst_path = conf_path(vmid, target)
    os.rename(conf_path(vmid, src), dst_path)  # (not through local/: another mount)
    r = on_node(target, "qm", "resume", str(vmid), timeout=60)
    resumed = r.returncode == 0
    qm_stop(vmid, migratedfrom=target)
    on_node(target, "qm", "unlock", str(vmid), timeout=60)  # the target's lock, its config
    print("migration finished in %.2f s" % (time.monotonic() - t0), flush=True)
    if not resumed:
        raise Fail("failed to resume the VM on %s" % target)


def qm_unlock(vmid):
    path = conf_path(vmid)
    conf = load_conf(path)
    conf.pop("lock", None)
    write_conf(path, conf)


def qm_set(vmid, opts):
    path = conf_path(vmid)
    conf = load_conf(path)
    if conf.get("lock") and "--skiplock" not in opts[0::2]:
        raise Fail("VM is locked (%s)" % conf["lock"])
    i = 0
    while i < len(opts):
        key = opts[i]
        if not key.startswith("--") or i + 1 >= len(opts):
            raise Fail("bad option '%s'" % key)
        val = opts[i + 1]
        i += 2
        if key == "--skiplock":
            continue
        if key == "--delete":
            for k in val.split(","):
                conf.pop(k.strip(), None)
            continue
        k = key[2:]
        if k == "hookscript":
            hookscript_path(val)
        conf[k] = val
    write_conf(path, conf)


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    verb, vmid, rest = argv[1], argv[2], argv[3:]
    if not re.match(r"^[1-9]\d{2,8}$", vmid):
        sys.stderr.write("400 Parameter verification failed.\nvmid: invalid format\n")
        return 2
    opt = dict(zip(rest[0::2], rest[1::2]))
    try:
        if verb == "config":
            for k, v in load_conf(conf_path(vmid)).items():
                print("%s: %s" % (k, v))
        elif verb == "set":
            with lock_config(vmid):
                qm_set(vmid, rest)
        elif verb == "unlock":
            with lock_config(vmid):
                qm_unlock(vmid)
        elif verb == "start":
            with lock_config(vmid):
                qm_start(vmid, opt.get("--migratedfrom"), opt.get("--migration_type", "secure"))
        elif verb == "stop":
            with lock_config(vmid):
                qm_stop(vmid, opt.get("--migratedfrom"))
        elif verb == "resume":
            with lock_config(vmid):
                qm_resume(vmid)
        elif verb == "suspend":
            if opt.get("--todisk") != "1":
                raise Fail("only 'qm suspend VMID --todisk 1' is emulated")
            qm_suspend_todisk(vmid)
        elif verb == "migrate":
            if len(rest) < 1:
                raise Fail("missing target node")
            mopt = dict(zip(rest[1::2], rest[2::2]))
            with lock_config(vmid):  # lock_vm: the whole migration
                qm_migrate(vmid, rest[0], mopt.get("--migration_type", "secure"))
        elif verb == "pid":
            pid = running_pid(vmid)
            if not pid:
                return 1
            print(pid)
        else:
            sys.stderr.write("unknown command 'qm %s'\n" % verb)
            return 2
    except (Fail, QMPError, OSError, subprocess.TimeoutExpired) as e:
        sys.stderr.write("%s\n" % e)
        return 255
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
