/*
 * labkit-shim: the small resident supervisor of one container.
 *
 * It is the parent of the container's PID 1 and outlives whoever started the
 * container. It copies the container's stdout and stderr into a json-file log
 * (Docker's format: one {"log","stream","time"} object per line), reaps PID 1,
 * writes exit.json atomically, then undoes the container's mounts (without
 * waiting for them to be written out: unmount_all) and removes its cgroup
 * directories.
 *
 * usage: labkit-shim --pid N --stdout FD --stderr FD --exit-file PATH --log PATH
 *                    [--oom PATH] [--umount PATH]... [--rmdir PATH]... [--unlink PATH]...
 *                    [--proxy FD=IP:PORT[,IP:PORT...]]... [--then ARG]...
 *
 * `--then` words form a command the shim execs once it has cleaned up: the
 * restart policy (`run --restart`), which decides whether the container starts again.
 *
 * A published port (`run -p 127.0.0.1:3000:3000`) is a listening socket that
 * the engine bound (so a port in use fails before anything is made) and
 * passed down as FD; the shim accepts on it and relays each connection to the
 * container's IP:PORT, round-robin when several are given (a service's
 * replicas). This is the job Docker's docker-proxy does, done here without
 * one more process per port.
 *
 * With `--launch-report FD --launch-error FD` and a container spec (pid1.h:
 * --root, --cwd, --hostname, --netns [--eth0 IP/LEN --gateway IP] | --new-net, --cgroup,
 * --bind MODE SRC DST,
 * --tmpfs FLAGS DST DATA, --mask, --readonly, --env, --arg, --caps, --seccomp, --readonly-rootfs, --block-signals,
 * --user USER[:GROUP], --rlimit RESOURCE:SOFT:HARD, --privileged, --stdin FD [--stdin-hold FD])
 * the shim starts the container itself, the way crun does: it leaves its
 * starter (fork, the parent exits, setsid), unshares a PID namespace and forks
 * PID 1, which builds the container (pid1.c) and execs the command. The shim
 * writes "ok PID1 SHIM STARTTIME" to the report pipe and supervises as above.
 * With `--exit-fd FD` it holds FD, the write end of a pipe of the starter's, until
 * the exit is recorded: the starter reads end of file then, and can record the exit
 * while the mounts and groups are undone (it then waits for this process to exit).
 *
 * Rootless, `--userns UID:GID [--subids USTART:UCOUNT:GSTART:GCOUNT]` puts PID 1
 * in a new user namespace first (fork_in_userns); `--overlay OPTS` has PID 1
 * mount the overlay itself (`--lowerdir-plus 0`: a deep one by descriptors at
 * once, see pid1.c's mount_overlay), `--host-devices 1` and `--tty-gid N` shape its
 * /dev, and `--net-sync READY,GO --lifeline FD` let the starter attach a
 * user-mode network to PID 1's network namespace before anything is mounted.
 * The starter is a plain posix_spawn(3) of this binary: no copy of the
 * starter's (large) memory is made on the way to the container.
 *
 * With `--tty ROWS:COLS` PID 1 gets a terminal instead of pipes: a new pseudo-terminal
 * from the container's own devpts, whose master it sends back here (console.c). The shim
 * holds the master for the container's life, logs its output as stdout, and relays it to
 * callers: `--attach-fd FD`, a connection made before PID 1 runs (`run -it`: nothing is
 * missed), and whoever connects later to `--attach-socket PATH` (`attach`).
 *
 * With `--exec-pid PID --launch-error FD` and the command's spec (--arg, --env,
 * --cwd, --cgroup, --caps, --seccomp, --user, --rlimit) it is `docker exec` instead (pid1.c, exec_run): it
 * joins the running container, runs the command there with its own 0-2, and
 * exits with the command's code. No supervisor stays. With `--tty ROWS:COLS --attach-fd FD`
 * the command gets a terminal of the container's, and this process relays it to FD.
 *
 * This program and pid1.c are the only code that builds a container: labkit has
 * no second starter in Python (a host without a C compiler gets the simulator).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <sched.h>
#include <sys/syscall.h>

#include "console.h"
#include "pid1.h"

#define LINE_MAX_BYTES 16384            /* Docker's json-file splits longer lines too */
#define MAX_CLEANUP 64
#define MAX_PROXIES 16
#define MAX_TARGETS 32
#define MAX_PAIRS 256
#define RELAY_BYTES 65536

struct proxy {
    int fd;                             /* listening socket, bound by the engine */
    int n_targets, next;
    struct sockaddr_in targets[MAX_TARGETS];
};

struct pair {
    int a, b;                           /* client side, container side; -1 when unused */
};

static struct proxy proxies[MAX_PROXIES];
static int n_proxies;
static struct pair pairs[MAX_PAIRS];
static char relay_buf[RELAY_BYTES];

struct stream {
    int fd;
    const char *name;
    size_t len;
    char buf[LINE_MAX_BYTES];
};

static int log_fd = -1;
static const char *exit_file;
static struct console console;          /* the container's terminal (-t), see console.c */
static int console_sock = -1;           /* where PID 1 sends the terminal's master */
static int attach_fd = -1;              /* --attach-fd: the first caller, connected before PID 1 runs */
static int stdin_hold = -1;             /* --stdin-hold: the write end of PID 1's stdin, held open, never written */
static char out[LINE_MAX_BYTES * 6 + 256]; /* worst case: every byte escaped as \u00XX */

/* Report a problem next to exit.json (the shim has no terminal). */
static void warn(const char *what, const char *path)
{
    char diag[4096];
    const char *slash = strrchr(exit_file, '/');
    int dirlen = slash ? (int)(slash - exit_file) : 1;
    snprintf(diag, sizeof diag, "%.*s/shim.log", dirlen, slash ? exit_file : ".");
    int fd = open(diag, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    dprintf(fd, "labkit-shim: %s %s: %s\n", what, path ? path : "", strerror(errno));
    close(fd);
}

/* RFC 3339 with nanoseconds in UTC, trailing zeros trimmed, as Go's RFC3339Nano. */
static size_t rfc3339nano(char *dst, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(dst, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    if (ts.tv_nsec) {
        char frac[16];
        int k = snprintf(frac, sizeof frac, ".%09ld", ts.tv_nsec);
        while (frac[k - 1] == '0')
            k--;
        memcpy(dst + n, frac, (size_t)k);
        n += (size_t)k;
    }
    dst[n++] = 'Z';
    dst[n] = '\0';
    return n;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is invalid. */
static int utf8_len(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    int n;
    unsigned min;
    if (c < 0xC2 || c > 0xF4)
        return 0;
    if (c < 0xE0) { n = 2; min = 0x80; }
    else if (c < 0xF0) { n = 3; min = 0x800; }
    else { n = 4; min = 0x10000; }
    if ((size_t)n > avail)
        return 0;
    unsigned cp = c & (0x7F >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* Append s[0..len) to out as the body of a JSON string, escaped like Go's encoder. */
static size_t json_escape(char *dst, const unsigned char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            int n = utf8_len(s + i, len - i);
            if (n == 0) {                        /* invalid byte: U+FFFD, as Go does */
                memcpy(dst + o, "\\ufffd", 6);
                o += 6;
                i++;
            } else if (n == 3 && c == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9)) {
                memcpy(dst + o, s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029", 6);
                o += 6;
                i += 3;
            } else {
                memcpy(dst + o, s + i, (size_t)n);
                o += (size_t)n;
                i += (size_t)n;
            }
            continue;
        }
        i++;
        switch (c) {
        case '"': dst[o++] = '\\'; dst[o++] = '"'; continue;
        case '\\': dst[o++] = '\\'; dst[o++] = '\\'; continue;
        case '\n': dst[o++] = '\\'; dst[o++] = 'n'; continue;
        case '\r': dst[o++] = '\\'; dst[o++] = 'r'; continue;
        case '\t': dst[o++] = '\\'; dst[o++] = 't'; continue;
        }
        if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            memcpy(dst + o, "\\u00", 4);
            dst[o + 4] = hex[c >> 4];
            dst[o + 5] = hex[c & 15];
            o += 6;
        } else {
            dst[o++] = (char)c;
        }
    }
    return o;
}

static void write_all(int fd, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, s, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            warn("write", "log");
            return;
        }
        s += n;
        len -= (size_t)n;
    }
}

static void emit(const struct stream *st, const char *line, size_t len)
{
    size_t o = 0;
    memcpy(out, "{\"log\":\"", 8);
    o = 8;
    o += json_escape(out + o, (const unsigned char *)line, len);
    o += (size_t)sprintf(out + o, "\",\"stream\":\"%s\",\"time\":\"", st->name);
    o += rfc3339nano(out + o, 64);
    memcpy(out + o, "\"}\n", 3);
    o += 3;
    if (log_fd >= 0)
        write_all(log_fd, out, o);
}

/* Read what is there; log each complete line; return 0 at end of file. */
static int pump(struct stream *st)
{
    ssize_t n = read(st->fd, st->buf + st->len, sizeof st->buf - st->len);
    if (n < 0 && errno != EIO) /* EIO: a terminal's master once every holder of the slave closed it */
        return errno == EINTR || errno == EAGAIN;
    if (n > 0 && st->fd == console.master)
        console_broadcast(&console, st->buf + st->len, (size_t)n);
    if (n <= 0) {
        if (st->len)
            emit(st, st->buf, st->len);  /* a last line without a newline */
        st->len = 0;
        return 0;
    }
    st->len += (size_t)n;
    size_t start = 0;
    for (size_t i = start; i < st->len; i++) {
        if (st->buf[i] == '\n') {
            emit(st, st->buf + start, i + 1 - start);
            start = i + 1;
        }
    }
    if (start == 0 && st->len == sizeof st->buf) {
        emit(st, st->buf, st->len);      /* a line longer than the buffer: log it in pieces */
        start = st->len;
    }
    memmove(st->buf, st->buf + start, st->len - start);
    st->len -= start;
    return 1;
}

/* The N of the "oom_kill N" line in memory.events (v2) or memory.oom_control (v1). */
static long oom_kills(const char *path)
{
    char buf[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, "oom_kill ", 9) == 0)
            return strtol(line + 9, NULL, 10);
    return 0;
}

static void write_exit(int status, const char *oom_file)
{
    char body[512], tmp[4096], finished[64];
    int code, sig = 0;
    if (WIFSIGNALED(status)) {
        sig = WTERMSIG(status);
        code = 128 + sig;
    } else {
        code = WEXITSTATUS(status);
    }
    int oom = oom_file && oom_kills(oom_file) > 0;
    rfc3339nano(finished, sizeof finished);
    char signal_text[16] = "null";
    if (sig)
        snprintf(signal_text, sizeof signal_text, "%d", sig);
    int len = snprintf(body, sizeof body, "{\"ExitCode\": %d, \"FinishedAt\": \"%s\", \"OOMKilled\": %s, \"Signal\": %s}\n",
                       code, finished, oom ? "true" : "false", signal_text);
    snprintf(tmp, sizeof tmp, "%s.tmp", exit_file);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        warn("open", tmp);
        return;
    }
    write_all(fd, body, (size_t)len);
    close(fd);
    if (rename(tmp, exit_file) < 0)      /* rename(2) is atomic: readers see all or nothing */
        warn("rename", exit_file);
}

/* The group's parent (labkit's, one per hierarchy) goes with its last group: rmdir(2) refuses a
 * cgroup that still has children (EBUSY), so this is a no-op while other containers run. */
static void remove_parent(const char *path)
{
    char parent[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path || (size_t)(slash - path) >= sizeof parent)
        return;
    memcpy(parent, path, (size_t)(slash - path));
    parent[slash - path] = '\0';
    rmdir(parent);
}

static void remove_dir(const char *path)
{
    /* A v1 cgroup can stay busy for a moment after its last task exited. */
    for (int tries = 0; tries < 100; tries++) {
        if (rmdir(path) == 0 || errno == ENOENT) {
            remove_parent(path);
            return;
        }
        if (errno != EBUSY)
            break;
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    warn("rmdir", path);
}

/*
 * Undo the container's mounts (umount2(2), MNT_DETACH: out of every mount table at once) without
 * waiting for its writable layer to be written out.
 *
 * When the last mount of an overlay goes, its superblock is shut down, and overlayfs syncs its
 * upper filesystem then (ovl_sync_fs in fs/overlayfs/super.c, from generic_shutdown_super through
 * sync_filesystem): the whole host filesystem that holds the state root, everyone's dirty data on
 * it, which on a busy host takes tens to hundreds of milliseconds. Whoever waits for this
 * supervisor (`labkit run`, `wait`, `rm`) would wait for that too. So a child keeps each mounted
 * directory open (O_PATH: a reference to its mount) while this process detaches them, and ends
 * only after that: its exit drops the last reference, and it is the one that waits for the sync,
 * in the background. It holds nothing else (every other descriptor closed) and is named
 * labkit-umount, without this supervisor's arguments. Without a child (fork failed, nothing to
 * hold) the mounts are undone here, waiting as before.
 */
static void close_others(int *keep, int n);

static void unmount_all(const char **paths, int n, int argc, char **argv)
{
    int held[MAX_CLEANUP], n_held = 0, gate[2] = {-1, -1};
    for (int i = 0; i < n; i++) {
        int fd = open(paths[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0)
            held[n_held++] = fd;
    }
    if (n_held > 0) {
        /* PID 1's namespace died with it, and this process's new children would go there (it unshared
         * CLONE_NEWPID to fork PID 1): fork(2) fails with ENOMEM. Put pid_for_children back to our own
         * namespace (setns(2), pid_namespaces(7)); rootless, nothing was unshared here and this is refused. */
        int own = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
        if (own >= 0) {
            setns(own, CLONE_NEWPID);
            close(own);
        }
    }
    if (n_held > 0 && pipe2(gate, O_CLOEXEC) == 0) {
        pid_t holder = fork();
        if (holder == 0) {
            int keep[MAX_CLEANUP + 1], n_keep = 0;
            keep[n_keep++] = gate[0];
            for (int i = 0; i < n_held; i++)
                keep[n_keep++] = held[i];
            /* close_range(2) (Linux 5.9) over the gaps; before it, one close(2) per descriptor up to 1024 */
            int ranges = syscall(SYS_close_range, ~0U, ~0U, 0U) == 0;
            for (int fd = 0; fd < (ranges ? 3 : 1024); fd++) {
                int kept = 0;
                for (int i = 0; i < n_keep && !kept; i++)
                    kept = fd == keep[i];
                if (!kept)
                    close(fd);
            }
            if (ranges)
                close_others(keep, n_keep); /* from 3 up */
            if (argc > 0) { /* ps(1) and /proc/PID/cmdline show this name, not the container's paths */
                char *end = argv[argc - 1] + strlen(argv[argc - 1]);
                memset(argv[0], 0, (size_t)(end - argv[0]));
                snprintf(argv[0], (size_t)(end - argv[0]) + 1, "labkit-umount");
            }
            prctl(PR_SET_NAME, "labkit-umount", 0, 0, 0);
            char byte;
            while (read(gate[0], &byte, 1) < 0 && errno == EINTR)
                ; /* end of file: the mounts are detached, and this exit may be the last reference */
            _exit(0);
        }
        close(gate[0]);
        if (holder < 0) {
            close(gate[1]);
            gate[1] = -1;
        }
    }
    for (int i = 0; i < n; i++)
        if (umount2(paths[i], MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
            warn("umount2", paths[i]);
    for (int i = 0; i < n_held; i++)
        close(held[i]);
    if (gate[1] >= 0)
        close(gate[1]);
}

/* "--proxy 5=172.17.0.2:3000,172.17.0.3:3000" */
static int parse_proxy(const char *value)
{
    if (n_proxies >= MAX_PROXIES)
        return -1;
    struct proxy *p = &proxies[n_proxies];
    char copy[2048];
    snprintf(copy, sizeof copy, "%s", value);
    char *eq = strchr(copy, '=');
    if (!eq)
        return -1;
    *eq = '\0';
    p->fd = atoi(copy);
    p->n_targets = p->next = 0;
    for (char *save = NULL, *item = strtok_r(eq + 1, ",", &save); item && p->n_targets < MAX_TARGETS;
         item = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(item, ':');
        if (!colon)
            return -1;
        *colon = '\0';
        struct sockaddr_in *t = &p->targets[p->n_targets];
        memset(t, 0, sizeof *t);
        t->sin_family = AF_INET;
        t->sin_port = htons((unsigned short)atoi(colon + 1));
        if (inet_pton(AF_INET, item, &t->sin_addr) != 1)
            return -1;
        p->n_targets++;
    }
    fcntl(p->fd, F_SETFD, FD_CLOEXEC);
    n_proxies++;
    return 0;
}

/* Accept one client and connect it to the next target that answers. */
static void accept_client(struct proxy *p)
{
    int client = accept4(p->fd, NULL, NULL, SOCK_CLOEXEC);
    if (client < 0)
        return;
    for (int tries = 0; tries < p->n_targets; tries++) {
        struct sockaddr_in *t = &p->targets[p->next];
        p->next = (p->next + 1) % p->n_targets;
        int up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (up < 0)
            break;
        if (connect(up, (struct sockaddr *)t, sizeof *t) == 0) {
            for (int i = 0; i < MAX_PAIRS; i++)
                if (pairs[i].a < 0) {
                    pairs[i] = (struct pair){client, up};
                    return;
                }
        }
        close(up);
    }
    close(client);  /* nobody answers: the client sees the connection closed */
}

/* Move what is readable on `from` to `to`; 0 when the connection is over. */
static int relay(int from, int to)
{
    ssize_t n = read(from, relay_buf, sizeof relay_buf);
    if (n <= 0)
        return 0;
    for (char *p = relay_buf; n > 0;) {
        ssize_t w = write(to, p, (size_t)n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return 0;
        }
        p += w;
        n -= w;
    }
    return 1;
}

static void close_pair(struct pair *c)
{
    close(c->a);
    close(c->b);
    c->a = c->b = -1;
}

/* Close every descriptor but 0-2 and those in keep[] (close_range(2) over the gaps). */
static void close_others(int *keep, int n)
{
    for (int i = 1; i < n; i++) /* insertion sort: a handful of descriptors */
        for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            int t = keep[j]; keep[j] = keep[j - 1]; keep[j - 1] = t;
        }
    unsigned low = 3;
    for (int i = 0; i < n; i++) {
        if (keep[i] < 3)
            continue;
        if ((unsigned)keep[i] > low)
            syscall(SYS_close_range, low, (unsigned)keep[i] - 1, 0);
        low = (unsigned)keep[i] + 1;
    }
    syscall(SYS_close_range, low, ~0U, 0);
}

static void launch_failed(int report_fd, const char *what)
{
    dprintf(report_fd, "error %s: %s", what, strerror(errno));
    _exit(1);
}

/* Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. */
static unsigned long long start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    for (int field = 2; p && field < 22; field++)
        p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* Rootless: the user namespace PID 1 is made in, and how its ids map (user_namespaces(7)). */
static struct {
    int on;
    unsigned uid, gid;                  /* the user's ids: root (0) inside */
    unsigned long uid_start, uid_count; /* subordinate ranges (/etc/subuid, /etc/subgid) mapped to 1..count */
    unsigned long gid_start, gid_count; /* inside, by newuidmap(1)/newgidmap(1); count 0: the single-id map */
} userns;
static int lifeline = -1;               /* held until the shim exits: a user-mode network stack ends with it */
static int exit_fd = -1;                /* --exit-fd: closed once the exit is recorded (exit.json), before the cleanup */

/* Read `fd` until end of file or `cap - 1` bytes, NUL-terminated; returns the length. */
static size_t read_text(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    ssize_t n;
    while (got < cap - 1 && (n = read(fd, buf + got, cap - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    return got;
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/*
 * newuidmap(1) or newgidmap(1) on `pid`: "0 BASE 1" and "1 START COUNT". These set-user-ID
 * helpers check /etc/subuid and /etc/subgid and write the map the user could not write alone;
 * they must run outside the namespace they map. Returns 0, or -1 with their words in `why`.
 */
static int run_mapper(const char *helper, pid_t pid, unsigned base, unsigned long start, unsigned long count,
                      char *why, size_t cap)
{
    char a[5][24];
    snprintf(a[0], sizeof a[0], "%d", (int)pid);
    snprintf(a[1], sizeof a[1], "%u", base);
    snprintf(a[2], sizeof a[2], "%lu", start);
    snprintf(a[3], sizeof a[3], "%lu", count);
    char *argv[] = {(char *)helper, a[0], "0", a[1], "1", "1", a[2], a[3], NULL};
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return snprintf(why, cap, "pipe: %s", strerror(errno)), -1;
    pid_t h = fork();
    if (h == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        execvp(helper, argv);
        dprintf(2, "%s", strerror(errno));
        _exit(127);
    }
    close(p[1]);
    char said[1024];
    size_t got = read_text(p[0], said, sizeof said);
    close(p[0]);
    while (got && (said[got - 1] == '\n' || said[got - 1] == ' '))
        got--;
    said[got] = '\0';
    int status = 0;
    if (h < 0 || waitpid(h, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
        snprintf(why, cap, "%s %s 0 %s 1 1 %s %s: %s", helper, a[0], a[1], a[2], a[3], got ? said : "failed");
        return -1;
    }
    return 0;
}

/*
 * Rootless: fork U, which unshares a user namespace, gets its id map, unshares the PID
 * namespace (owned by the new user namespace) and forks PID 1 there, then exits. PID 1 is
 * re-parented to this process, a child subreaper (prctl(2)), which so stays in the host's
 * user namespace as the user: from there newuidmap(1) can map U's namespace, and the restart
 * policy (--then) starts the next container as any starter does. Returns PID 1's host PID.
 */
static pid_t fork_in_userns(struct pid1_spec *spec, int report_fd, int out[2], int err[2])
{
    int ranged = userns.uid_count > 0 && userns.gid_count > 0;
    int pid_pipe[2], ask[2] = {-1, -1}, answer[2] = {-1, -1};
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        launch_failed(report_fd, "prctl(PR_SET_CHILD_SUBREAPER)");
    if (pipe2(pid_pipe, O_CLOEXEC) < 0 || (ranged && (pipe2(ask, O_CLOEXEC) < 0 || pipe2(answer, O_CLOEXEC) < 0)))
        launch_failed(report_fd, "pipe");
    pid_t u = fork();
    if (u < 0)
        launch_failed(report_fd, "fork");
    if (u == 0) {
        char text[1200] = "";
        close(report_fd);
        close(pid_pipe[0]);
        if (unshare(CLONE_NEWUSER) < 0) {
            snprintf(text, sizeof text, "unshare(CLONE_NEWUSER): %s", strerror(errno));
        } else if (!ranged) {
            char line[64];
            /* setgroups must say "deny" before an unprivileged process may write gid_map */
            if (write_file("/proc/self/setgroups", "deny") < 0)
                snprintf(text, sizeof text, "/proc/self/setgroups: %s", strerror(errno));
            snprintf(line, sizeof line, "0 %u 1\n", userns.uid);
            if (!*text && write_file("/proc/self/uid_map", line) < 0)
                snprintf(text, sizeof text, "/proc/self/uid_map: %s", strerror(errno));
            snprintf(line, sizeof line, "0 %u 1\n", userns.gid);
            if (!*text && write_file("/proc/self/gid_map", line) < 0)
                snprintf(text, sizeof text, "/proc/self/gid_map: %s", strerror(errno));
        } else {
            char said[1024];
            close(ask[0]);
            close(answer[1]);
            ssize_t asked = write(ask[1], "1", 1); /* "map me": the answer says whether it was done */
            close(ask[1]);
            (void)asked;
            size_t got = read_text(answer[0], said, sizeof said);
            if (strcmp(said, "ok"))
                snprintf(text, sizeof text, "the id map could not be written: %s", got ? said : "the mapper died");
        }
        if (!*text && unshare(CLONE_NEWPID) < 0)
            snprintf(text, sizeof text, "unshare(CLONE_NEWPID): %s", strerror(errno));
        if (!*text) {
            pid_t child = fork_in_cgroup(spec, &spec->born_in);
            if (child == 0) {
                close(pid_pipe[1]);
                close(out[0]);
                close(err[0]);
                spec->out_fd = out[1];
                spec->err_fd = err[1];
                pid1_run(spec);
            }
            if (child > 0)
                snprintf(text, sizeof text, "%d", (int)child);
            else
                snprintf(text, sizeof text, "fork: %s", strerror(errno));
        }
        if (write(pid_pipe[1], text, strlen(text)) < 0)
            _exit(1);
        _exit(0);
    }
    close(pid_pipe[1]);
    if (ranged) {
        char c, why[1100] = "ok";
        close(ask[1]);
        close(answer[0]);
        if (read(ask[0], &c, 1) == 1) { /* U has its namespace: map it from out here */
            if (run_mapper("newuidmap", u, userns.uid, userns.uid_start, userns.uid_count, why, sizeof why) == 0)
                run_mapper("newgidmap", u, userns.gid, userns.gid_start, userns.gid_count, why, sizeof why);
            if (write(answer[1], why, strlen(why)) < 0)
                why[0] = '\0';
        }
        close(ask[0]);
        close(answer[1]);
    }
    char said[1200];
    size_t got = read_text(pid_pipe[0], said, sizeof said);
    close(pid_pipe[0]);
    while (waitpid(u, NULL, 0) < 0 && errno == EINTR)
        ; /* U is gone: PID 1 is our child now */
    char *end;
    long child = strtol(said, &end, 10);
    if (!got || *end || child <= 0) {
        dprintf(report_fd, "error %s", got ? said : "the user namespace could not be made");
        _exit(1);
    }
    return (pid_t)child;
}

/*
 * Start the container: leave the starter, make a PID namespace, fork PID 1 into it.
 * Returns PID 1's host PID; out_r/err_r receive the read ends of its stdout and stderr.
 */
static pid_t launch(struct pid1_spec *spec, int report_fd, int *out_r, int *err_r)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < NSIG; sig++) /* the starter's ignored signals are not ours */
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    pid_t first = fork();
    if (first < 0)
        launch_failed(report_fd, "fork");
    if (first > 0)
        _exit(0); /* the starter reaps this at once; the supervisor below is re-parented to init */
    setsid();
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        launch_failed(report_fd, "/dev/null");
    for (int fd = 0; fd < 3; fd++)
        dup2(null, fd); /* hold none of the starter's terminal or pipes */
    close(null);
    if (chdir("/") < 0)
        launch_failed(report_fd, "chdir /");
    int keep[8 + MAX_PROXIES], n_keep = 0;
    keep[n_keep++] = report_fd;
    keep[n_keep++] = spec->error_fd;
    if (spec->ready_fd >= 0) {
        keep[n_keep++] = spec->ready_fd;
        keep[n_keep++] = spec->go_fd;
    }
    if (lifeline >= 0) {
        keep[n_keep++] = lifeline;
        fcntl(lifeline, F_SETFD, FD_CLOEXEC); /* ours alone: not PID 1's, nor the restart policy's after us */
    }
    if (exit_fd >= 0) {
        keep[n_keep++] = exit_fd;
        fcntl(exit_fd, F_SETFD, FD_CLOEXEC); /* ours alone: PID 1's copy goes with its execve(2) */
    }
    for (int i = 0; i < n_proxies; i++)
        keep[n_keep++] = proxies[i].fd;
    if (attach_fd >= 0)
        keep[n_keep++] = attach_fd;
    if (spec->stdin_fd >= 0)
        keep[n_keep++] = spec->stdin_fd;
    if (stdin_hold >= 0) {
        keep[n_keep++] = stdin_hold;
        fcntl(stdin_hold, F_SETFD, FD_CLOEXEC); /* ours alone: not PID 1's, nor the restart policy's after us */
    }
    close_others(keep, n_keep);
    int out[2] = {-1, -1}, err[2] = {-1, -1}, pair[2];
    if (spec->tty) { /* PID 1's 0-2 are its terminal: no pipes; its master comes back over `pair` */
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
            launch_failed(report_fd, "socketpair");
        console_sock = pair[0];
        spec->console_fd = pair[1];
    } else if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
        launch_failed(report_fd, "pipe");
    }
    pid_t child;
    if (userns.on) {
        child = fork_in_userns(spec, report_fd, out, err);
    } else {
        /* A new PID namespace applies to the children forked afterwards (pid_namespaces(7)). */
        if (unshare(CLONE_NEWPID) < 0)
            launch_failed(report_fd, "unshare(CLONE_NEWPID)");
        child = fork_in_cgroup(spec, &spec->born_in);
    }
    if (child < 0)
        launch_failed(report_fd, "fork");
    if (child == 0) {
        close(report_fd);
        close(out[0]);
        close(err[0]);
        for (int i = 0; i < n_proxies; i++)
            close(proxies[i].fd);
        if (attach_fd >= 0)
            close(attach_fd);
        spec->out_fd = out[1];
        spec->err_fd = err[1];
        pid1_run(spec);
    }
    close(out[1]);
    close(err[1]);
    if (spec->stdin_fd >= 0)
        close(spec->stdin_fd); /* PID 1's alone: it reads end of file once the writer closes */
    if (spec->tty)
        close(spec->console_fd); /* PID 1's end: end of file here if it fails before it sends the master */
    if (spec->ready_fd >= 0) { /* PID 1's, for the network handshake with the starter */
        close(spec->ready_fd);
        close(spec->go_fd);
    }
    close(spec->error_fd); /* PID 1 holds it until execve(2) closes it: the starter's signal */
    /* A starter killed before it read this must not take the supervisor with it (SIGPIPE): PID 1
     * runs already, and whoever reads the container next finds this shim by its arguments and ends both. */
    signal(SIGPIPE, SIG_IGN);
    dprintf(report_fd, "ok %d %d %llu", (int)child, (int)getpid(), start_time(child));
    close(report_fd);
    *out_r = out[0];
    *err_r = err[0];
    return child;
}

int main(int argc, char **argv)
{
    pid_t pid = 0;
    const char *log_path = NULL, *oom_file = NULL;
    const char *umounts[MAX_CLEANUP], *rmdirs[MAX_CLEANUP], *unlinks[MAX_CLEANUP];
    char *then[MAX_CLEANUP + 1];
    int n_umounts = 0, n_rmdirs = 0, n_unlinks = 0, n_then = 0;
    for (int i = 0; i < MAX_PAIRS; i++)
        pairs[i].a = pairs[i].b = -1;
    static struct stream streams[2] = {{-1, "stdout", 0, {0}}, {-1, "stderr", 0, {0}}};

    static struct pid1_spec spec = {.cwd = "/", .error_fd = -1, .tty_gid = 5, .ready_fd = -1, .go_fd = -1,
                                    .console_fd = -1, .stdin_fd = -1, .lowerdir_plus = 1};
    const char *attach_socket = NULL;
    console_init(&console);
    int report_fd = -1, exec_pid = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *key = argv[i], *value = argv[i + 1];
        if (!strcmp(key, "--pid")) pid = (pid_t)atoi(value);
        else if (!strcmp(key, "--stdout")) streams[0].fd = atoi(value);
        else if (!strcmp(key, "--stderr")) streams[1].fd = atoi(value);
        else if (!strcmp(key, "--exit-file")) exit_file = value;
        else if (!strcmp(key, "--log")) log_path = value;
        else if (!strcmp(key, "--oom")) oom_file = value;
        else if (!strcmp(key, "--umount") && n_umounts < MAX_CLEANUP) umounts[n_umounts++] = value;
        else if (!strcmp(key, "--rmdir") && n_rmdirs < MAX_CLEANUP) rmdirs[n_rmdirs++] = value;
        else if (!strcmp(key, "--unlink") && n_unlinks < MAX_CLEANUP) unlinks[n_unlinks++] = value;
        else if (!strcmp(key, "--then") && n_then < MAX_CLEANUP) then[n_then++] = (char *)value;
        else if (!strcmp(key, "--proxy") && parse_proxy(value) == 0) continue;
        /* the container to launch (pid1.h) */
        else if (!strcmp(key, "--launch-report")) report_fd = atoi(value);
        else if (!strcmp(key, "--exec-pid")) exec_pid = atoi(value);
        else if (!strcmp(key, "--launch-error")) spec.error_fd = atoi(value);
        else if (!strcmp(key, "--root")) spec.root = value;
        else if (!strcmp(key, "--cwd")) spec.cwd = value;
        else if (!strcmp(key, "--hostname")) spec.hostname = value;
        else if (!strcmp(key, "--netns")) spec.netns = value;
        else if (!strcmp(key, "--new-net")) spec.new_net = atoi(value);
        else if (!strcmp(key, "--eth0")) spec.eth0 = value;
        else if (!strcmp(key, "--gateway")) spec.gateway = value;
        else if (!strcmp(key, "--readonly-rootfs")) spec.readonly_rootfs = atoi(value);
        else if (!strcmp(key, "--block-signals")) spec.block_signals = atoi(value);
        else if (!strcmp(key, "--caps")) spec.caps = strtoull(value, NULL, 16);
        else if (!strcmp(key, "--seccomp")) spec.seccomp = value;
        else if (!strcmp(key, "--cgroup") && spec.n_cgroups < 16) spec.cgroups[spec.n_cgroups++] = value;
        else if (!strcmp(key, "--mask") && spec.n_masked < 64) spec.masked[spec.n_masked++] = value;
        else if (!strcmp(key, "--readonly") && spec.n_readonly < 64) spec.readonly[spec.n_readonly++] = value;
        else if (!strcmp(key, "--env") && spec.n_env < PID1_MAX_LIST) spec.env[spec.n_env++] = (char *)value;
        else if (!strcmp(key, "--arg") && spec.n_argv < PID1_MAX_LIST) spec.argv[spec.n_argv++] = (char *)value;
        else if (!strcmp(key, "--overlay")) spec.overlay = value;
        else if (!strcmp(key, "--lowerdir-plus")) spec.lowerdir_plus = atoi(value);
        else if (!strcmp(key, "--host-devices")) spec.host_devices = atoi(value);
        else if (!strcmp(key, "--tty-gid")) spec.tty_gid = atoi(value);
        else if (!strcmp(key, "--net-sync") && sscanf(value, "%d,%d", &spec.ready_fd, &spec.go_fd) == 2) continue;
        else if (!strcmp(key, "--lifeline")) lifeline = atoi(value);
        else if (!strcmp(key, "--exit-fd")) exit_fd = atoi(value);
        else if (!strcmp(key, "--tty") && sscanf(value, "%hu:%hu", &spec.rows, &spec.cols) == 2) spec.tty = 1;
        else if (!strcmp(key, "--attach-fd")) attach_fd = atoi(value);
        else if (!strcmp(key, "--attach-socket")) attach_socket = value;
        else if (!strcmp(key, "--userns") && sscanf(value, "%u:%u", &userns.uid, &userns.gid) == 2) userns.on = 1;
        else if (!strcmp(key, "--subids") && sscanf(value, "%lu:%lu:%lu:%lu", &userns.uid_start, &userns.uid_count,
                                                     &userns.gid_start, &userns.gid_count) == 4) continue;
        else if (!strcmp(key, "--bind") && i + 3 < argc && spec.n_binds < 64) {
            /* --bind ro|rw SOURCE DESTINATION */
            spec.binds[spec.n_binds++] = (struct bind){argv[i + 2], argv[i + 3], !strcmp(value, "ro"), NULL, 0, NULL};
            i += 2;
        }
        else if (!strcmp(key, "--tmpfs") && i + 3 < argc && spec.n_binds < 64) {
            /* --tmpfs FLAGS DESTINATION DATA: a new tmpfs, in mount order among the binds */
            spec.binds[spec.n_binds++] = (struct bind){"tmpfs", argv[i + 2], 0, "tmpfs", strtoul(value, NULL, 0),
                                                       argv[i + 3]};
            i += 2;
        }
        else if (!strcmp(key, "--user")) spec.user = value;
        else if (!strcmp(key, "--stdin")) spec.stdin_fd = atoi(value);
        else if (!strcmp(key, "--stdin-hold")) stdin_hold = atoi(value);
        else if (!strcmp(key, "--privileged")) spec.privileged = atoi(value);
        else if (!strcmp(key, "--rlimit") && spec.n_rlimits < 16
                 && sscanf(value, "%d:%lld:%lld", &spec.rlimits[spec.n_rlimits].resource,
                           &spec.rlimits[spec.n_rlimits].soft, &spec.rlimits[spec.n_rlimits].hard) == 3)
            spec.n_rlimits++;
        else {
            fprintf(stderr, "labkit-shim: unknown argument %s\n", key);
            return 2;
        }
    }
    if (exec_pid > 0) { /* `docker exec` (pid1.c, exec_run): 0-2 are the command's streams already */
        if (spec.n_argv == 0 || spec.error_fd < 0) {
            fprintf(stderr, "labkit-shim: --exec-pid needs --launch-error and --arg\n");
            return 2;
        }
        if (spec.tty && attach_fd < 0) {
            fprintf(stderr, "labkit-shim: --exec-pid with --tty needs --attach-fd\n");
            return 2;
        }
        exec_run(&spec, exec_pid, attach_fd);
    }
    if (report_fd >= 0) {
        if (!spec.root || spec.n_argv == 0 || spec.error_fd < 0 || !exit_file || !log_path) {
            dprintf(report_fd, "error labkit-shim: --launch-report needs --launch-error, --root, --arg, "
                               "--exit-file and --log");
            return 2;
        }
        pid = launch(&spec, report_fd, &streams[0].fd, &streams[1].fd);
    }
    if (pid <= 0 || !exit_file || !log_path) {
        fprintf(stderr, "usage: labkit-shim --pid N --stdout FD --stderr FD --exit-file PATH --log PATH "
                        "[--oom PATH] [--umount PATH]... [--rmdir PATH]...\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600); /* the output may hold secrets */
    if (log_fd < 0)
        warn("open", log_path);
    char socket_dir[PATH_MAX] = "", *socket_name = NULL;
    if (spec.tty) {
        /* PID 1 sends its terminal's master before it execs, or dies first (end of file: nothing to relay). */
        console.master = console_recv_fd(console_sock);
        close(console_sock);
        streams[0].fd = console.master; /* a terminal has one output: Docker logs it all as stdout */
        if (console.master >= 0)
            fcntl(console.master, F_SETFL, fcntl(console.master, F_GETFL) | O_NONBLOCK);
        if (attach_fd >= 0)
            console_add_client(&console, attach_fd);
        if (attach_socket) {
            snprintf(socket_dir, sizeof socket_dir, "%s", attach_socket);
            char *slash = strrchr(socket_dir, '/');
            socket_name = slash ? slash + 1 : socket_dir;
            if (slash)
                *slash = '\0';
            if (console.master >= 0 && console_listen(&console, slash ? socket_dir : ".", socket_name) < 0)
                warn("bind", attach_socket);
        }
    }

    /* Copy output until both pipes reach end of file: when PID 1 exits the
     * kernel kills the rest of its PID namespace, so every writer goes away. */
    for (;;) {
        struct pollfd fds[2 + MAX_PROXIES + 2 * MAX_PAIRS + 1 + CONSOLE_MAX_CLIENTS];
        int n = 0, streams_open = 0;
        for (int i = 0; i < 2; i++)
            if (streams[i].fd >= 0) {
                fds[n++] = (struct pollfd){streams[i].fd, POLLIN, 0};
                streams_open++;
            }
        if (streams_open == 0)
            break;
        for (int i = 0; i < n_proxies; i++)
            fds[n++] = (struct pollfd){proxies[i].fd, POLLIN, 0};
        for (int i = 0; i < MAX_PAIRS; i++)
            if (pairs[i].a >= 0) {
                fds[n++] = (struct pollfd){pairs[i].a, POLLIN, 0};
                fds[n++] = (struct pollfd){pairs[i].b, POLLIN, 0};
            }
        int first_console = n;
        n += console_pollfds(&console, fds + n);
        if (poll(fds, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            warn("poll", NULL);
            break;
        }
        int k = 0;
        for (int i = 0; i < 2; i++) {
            if (streams[i].fd < 0)
                continue;
            if (fds[k++].revents && !pump(&streams[i])) {
                close(streams[i].fd);
                if (streams[i].fd == console.master)
                    console.master = -1; /* no more input for it either */
                streams[i].fd = -1;
            }
        }
        for (int i = 0; i < n_proxies; i++)
            if (fds[k++].revents & POLLIN)
                accept_client(&proxies[i]);
        for (int i = 0; i < MAX_PAIRS && k < first_console; i++) {
            if (pairs[i].a < 0 || fds[k].fd != pairs[i].a)
                continue;
            short ra = fds[k].revents, rb = fds[k + 1].revents;
            k += 2;
            if ((ra && !relay(pairs[i].a, pairs[i].b)) || (rb && !relay(pairs[i].b, pairs[i].a)))
                close_pair(&pairs[i]);
        }
        console_handle(&console, fds + first_console, n - first_console);
    }
    console_close_clients(&console); /* attached callers read end of file: the container has ended */
    if (socket_name && unlink(attach_socket) < 0 && errno != ENOENT)
        warn("unlink", attach_socket);
    for (int i = 0; i < MAX_PAIRS; i++)
        if (pairs[i].a >= 0)
            close_pair(&pairs[i]);
    for (int i = 0; i < n_proxies; i++)
        close(proxies[i].fd);

    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            warn("waitpid", NULL);
            status = 255 << 8;
            break;
        }
    }
    write_exit(status, oom_file);
    if (exit_fd >= 0) { /* the starter may record the exit now, while the cleanup below goes on */
        close(exit_fd);
        exit_fd = -1;
    }
    unmount_all(umounts, n_umounts, argc, argv);
    for (int i = 0; i < n_rmdirs; i++)
        remove_dir(rmdirs[i]);
    for (int i = 0; i < n_unlinks; i++)
        if (unlink(unlinks[i]) < 0 && errno != ENOENT)
            warn("unlink", unlinks[i]);
    if (n_then > 0) {
        then[n_then] = NULL;
        if (log_fd >= 0)
            close(log_fd);
        execv(then[0], then);
        warn("execv", then[0]);
    }
    return 0;
}
