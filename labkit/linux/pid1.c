/*
 * pid1.c: a container's first process builds the container around itself, then execs the command.
 *
 * Compiled into labkit-shim with shim.c. The shim forks this process right
 * after unshare(CLONE_NEWPID), so it is PID 1 of a new PID namespace; it then
 * does, in the order runc's init does:
 *
 *   join the cgroups ("0" means "me", cgroups(7); see join_cgroup)
 *   unshare mount, UTS, IPC, cgroup [and network] namespaces
 *   [rootless: tell the starter the network namespace exists; wait until it has attached a network]
 *   [setns into a network namespace the engine wired up; eth0's address, lo, default route]
 *   hostname; every mount private; lo up
 *   [rootless: mount the overlay, which only a mount namespace of our user namespace may hold]
 *   bind the rootfs onto itself (pivot_root(2) needs a mount point)
 *   new proc, a tmpfs /dev with device nodes and devpts/shm/mqueue, read-only sysfs
 *   the container's own cgroups, read-only, at /sys/fs/cgroup (cgroup2, or v1 groups on a tmpfs)
 *   bind mounts (volumes, /etc/hosts, ...), Docker's masked and read-only paths
 *   pivot_root(".", "."), then detach the old root
 *   working directory; capabilities down to the given set; no_new_privs; the seccomp filter; execve
 *
 * It never returns: a failure is written to the error pipe as "CODE\0MESSAGE"
 * (the exit codes and messages Docker gives) and the process exits with CODE.
 * The error pipe is close-on-exec, so the starter reading it sees end of file
 * once execve(2) has succeeded.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <limits.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <linux/sched.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "console.h"
#include "pid1.h"

#define MAX_SYMLINKS 40
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static int error_fd = -1;

/* Say why the container cannot start, and end with the code Docker gives that reason. */
static void __attribute__((noreturn, format(printf, 2, 3))) fail(int code, const char *fmt, ...)
{
    char msg[4000];
    int n = snprintf(msg, sizeof msg, "%d", code) + 1; /* "CODE\0MESSAGE" */
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    if ((size_t)(n + m) > sizeof msg - 1)
        m = (int)sizeof msg - 1 - n;
    if (error_fd >= 0 && write(error_fd, msg, (size_t)(n + m)) < 0) {
        /* nobody to tell */
    }
    _exit(code);
}

/* A system call failed while setting up: "error during container init: <reason>: <path>". */
static void __attribute__((noreturn)) fail_errno(const char *path)
{
    fail(128, "error during container init: %s: %s", strerror(errno), path);
}

/* strerror(3) with its first letter in lower case, as Go prints syscall errors. */
static const char *lower_strerror(int err, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", strerror(err));
    if (buf[0] >= 'A' && buf[0] <= 'Z')
        buf[0] = (char)(buf[0] - 'A' + 'a');
    return buf;
}

static void do_mount(const char *src, const char *target, const char *type, unsigned long flags, const char *data)
{
    if (mount(src, target, type, flags, data) < 0)
        fail_errno(target);
}

/*
 * Stack the lower layers one by one through the new mount API: fsconfig(2)
 * takes each as "lowerdir+" (Linux 6.8, Documentation/filesystems/overlayfs.rst).
 * Returns 0, or -1 with errno set and `refused` naming what the kernel refused.
 * An older kernel refuses with EINVAL: overlayfs knows no such key (6.5-6.7),
 * or, before 6.5, its legacy options string passes a page (legacy_parse_param(),
 * fs/fs_context.c) or the key is unknown when the string is parsed.
 */
static int mount_lowers_one_by_one(const char *target, const char *opts, char *refused, size_t cap)
{
    enum { SET_FLAG = 0, SET_STRING = 1, CMD_CREATE = 6 }; /* FSCONFIG_*, <linux/mount.h> */
    int fs = (int)syscall(SYS_fsopen, "overlay", 1 /* FSOPEN_CLOEXEC */), mnt = -1, err = 0;
    char *copy = strdup(opts), *save = NULL, *lsave = NULL;
    snprintf(refused, cap, "fsopen(overlay)");
    if (fs < 0 || !copy || syscall(SYS_fsconfig, fs, SET_STRING, "source", "overlay", 0) < 0)
        goto out;
    for (char *opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
        char *value = strchr(opt, '=');
        if (value)
            *value++ = '\0';
        if (value && !strcmp(opt, "lowerdir")) {
            for (char *dir = strtok_r(value, ":", &lsave); dir; dir = strtok_r(NULL, ":", &lsave))
                if (syscall(SYS_fsconfig, fs, SET_STRING, "lowerdir+", dir, 0) < 0) {
                    snprintf(refused, cap, "%s", dir);
                    goto out;
                }
        } else if (syscall(SYS_fsconfig, fs, value ? SET_STRING : SET_FLAG, opt, value, 0) < 0) {
            snprintf(refused, cap, "%s", opt);
            goto out;
        }
    }
    snprintf(refused, cap, "%s", target);
    if (syscall(SYS_fsconfig, fs, CMD_CREATE, NULL, NULL, 0) < 0)
        goto out;
    mnt = (int)syscall(SYS_fsmount, fs, 1 /* FSMOUNT_CLOEXEC */, 0);
    if (mnt < 0 || syscall(SYS_move_mount, mnt, "", AT_FDCWD, target, 4 /* MOVE_MOUNT_F_EMPTY_PATH */) < 0)
        goto out;
    close(mnt);
    close(fs);
    free(copy);
    return 0;
out:
    err = errno;
    if (mnt >= 0)
        close(mnt);
    if (fs >= 0)
        close(fs);
    free(copy);
    errno = err;
    return -1;
}

/*
 * Mount the overlay with each lower layer named by a descriptor of it, for a
 * kernel that takes no "lowerdir+": overlayfs resolves a relative lowerdir from
 * the working directory (kern_path(); Docker's overlay2 driver chdirs into its
 * short "l/" links for the same reason), and in /proc/self/fd a descriptor's
 * number is a link to what it is open on (proc(5)). O_PATH opens need no more
 * than the search the path needs. A number and a colon a layer, so the 500 lower
 * layers overlayfs stacks (OVL_MAX_STACK) fit the page mount(2) reads; as
 * labkit/linux/overlay.py's mount_by_descriptors does.
 */
static void mount_by_descriptors(const char *target, const char *opts)
{
    size_t n = 1, len = strlen(opts);
    for (const char *c = opts; *c; c++)
        n += *c == ':';
    int *fds = calloc(n, sizeof *fds), nfds = 0;
    char *copy = strdup(opts), *out = malloc(len + 12 * n + 1), *save = NULL, *lsave = NULL;
    if (!fds || !copy || !out)
        fail_errno("overlay");
    size_t used = 0;
    for (char *opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
        if (strncmp(opt, "lowerdir=", 9)) {
            used += (size_t)sprintf(out + used, "%s%s", used ? "," : "", opt);
            continue;
        }
        used += (size_t)sprintf(out + used, "%slowerdir=", used ? "," : "");
        for (char *dir = strtok_r(opt + 9, ":", &lsave); dir && nfds < (int)n; dir = strtok_r(NULL, ":", &lsave)) {
            if ((fds[nfds] = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
                fail_errno(dir);
            used += (size_t)sprintf(out + used, "%s%d", nfds ? ":" : "", fds[nfds]);
            nfds++;
        }
    }
    if (used >= (size_t)sysconf(_SC_PAGESIZE))
        fail(128, "error during container init: the overlay's options take %zu bytes even with its %d lower layers "
                  "named by descriptors, and mount(2) reads %ld", used, nfds, sysconf(_SC_PAGESIZE) - 1);
    int here = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (here < 0 || chdir("/proc/self/fd") < 0)
        fail_errno("/proc/self/fd");
    do_mount("overlay", target, "overlay", 0, out);
    if (fchdir(here) < 0)
        fail_errno(".");
    close(here);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    free(fds);
    free(copy);
    free(out);
}

/*
 * Mount the overlay at `target`. mount(2) reads at most a page of options
 * (copy_mount_options(), fs/namespace.c), about 40 layers of labkit's paths;
 * a deeper stack goes one layer at a time ("lowerdir+") unless the engine knows
 * this kernel refuses that (`lowerdir_plus` 0), and by descriptors where it is
 * refused, as labkit/linux/overlay.py's mount_at does for root's containers.
 */
static void mount_overlay(const char *target, const char *opts, int lowerdir_plus)
{
    if (strlen(opts) < (size_t)sysconf(_SC_PAGESIZE)) {
        do_mount("overlay", target, "overlay", 0, opts);
        return;
    }
    char refused[PATH_MAX];
    if (lowerdir_plus && mount_lowers_one_by_one(target, opts, refused, sizeof refused) == 0)
        return;
    if (lowerdir_plus && errno != EINVAL)
        fail_errno(refused);
    mount_by_descriptors(target, opts);
}

/*
 * Resolve `path` as the container would see it, never leaving `root`: symlinks
 * are followed as if root were "/", ".." stops at root, and components that do
 * not exist yet are kept as written. So a symlink planted in the image
 * (/etc/hosts -> /etc/shadow) cannot redirect a mount outside the rootfs.
 */
static void secure_join(const char *root, const char *path, char *out, size_t cap)
{
    char rest[2 * PATH_MAX], resolved[PATH_MAX] = "", host[2 * PATH_MAX + 2], target[PATH_MAX];
    int links = 0;
    snprintf(rest, sizeof rest, "%s", path);
    char *p = rest;
    while (*p) {
        char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        char part[NAME_MAX + 1];
        if (len > NAME_MAX) {
            errno = ENAMETOOLONG;
            fail_errno(path);
        }
        memcpy(part, p, len);
        part[len] = '\0';
        p = slash ? slash + 1 : p + len;
        if (!len || !strcmp(part, "."))
            continue;
        if (!strcmp(part, "..")) {
            char *last = strrchr(resolved, '/');
            if (last)
                *last = '\0';
            continue;
        }
        snprintf(host, sizeof host, "%s%s/%s", root, resolved, part);
        struct stat st;
        if (lstat(host, &st) < 0 || !S_ISLNK(st.st_mode)) {
            size_t used = strlen(resolved);
            snprintf(resolved + used, sizeof resolved - used, "/%s", part);
            continue;
        }
        if (++links > MAX_SYMLINKS) {
            errno = ELOOP;
            fail_errno(path);
        }
        ssize_t n = readlink(host, target, sizeof target - 1);
        if (n < 0)
            fail_errno(host);
        target[n] = '\0';
        if (target[0] == '/')
            resolved[0] = '\0';
        char next[2 * PATH_MAX];
        snprintf(next, sizeof next, "%s/%s", target, p);
        snprintf(rest, sizeof rest, "%s", next);
        p = rest;
    }
    snprintf(out, cap, "%s%s", root, resolved[0] ? resolved : "");
}

/* mkdir(2) a mount point; one that exists must be a directory. */
static void mount_point(const char *path)
{
    struct stat st;
    if (mkdir(path, 0755) == 0)
        return;
    if (errno != EEXIST)
        fail_errno(path);
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        fail(128, "error during container init: mount point %s is not a directory", path);
    }
}

/* mkdir -p; returns 0, or -1 with errno set. */
static int make_dirs(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *s = buf + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char keep = *s;
            *s = '\0';
            int made = mkdir(buf, mode);
            if (made < 0 && errno != EEXIST)
                return -1;
            if (made < 0) {
                struct stat st;
                if (stat(buf, &st) < 0)
                    return -1;
                if (!S_ISDIR(st.st_mode)) {
                    errno = ENOTDIR;
                    return -1;
                }
            }
            *s = keep;
            if (!keep)
                return 0;
        }
    }
}

/* Bring lo up in a new network namespace (the only interface it has, and it starts down). */
static void loopback_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        fail_errno("lo");
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        fail_errno("lo");
    close(s);
}

static void set_addr(struct sockaddr *sa, in_addr_t addr)
{
    struct sockaddr_in *in = (struct sockaddr_in *)sa;
    memset(in, 0, sizeof *in);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = addr;
}

/*
 * eth0's address and netmask (netdevice(7): SIOCSIFADDR, SIOCSIFNETMASK; the
 * kernel derives the broadcast address), eth0 and lo up, and the default route
 * through the gateway (SIOCADDRT, route(8)): `ip addr add`, `ip link set up`
 * and `ip route add default via`, without a netlink library.
 */
static void configure_eth0(const char *cidr, const char *gateway)
{
    char ip[64];
    snprintf(ip, sizeof ip, "%s", cidr);
    char *slash = strchr(ip, '/');
    int prefix = slash ? atoi(slash + 1) : 32;
    if (slash)
        *slash = '\0';
    struct in_addr addr, gw;
    if (inet_pton(AF_INET, ip, &addr) != 1 || inet_pton(AF_INET, gateway, &gw) != 1 || prefix < 0 || prefix > 32)
        fail(128, "error during container init: bad address %s via %s", cidr, gateway);
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "eth0");
    set_addr(&ifr.ifr_addr, addr.s_addr);
    if (s < 0 || ioctl(s, SIOCSIFADDR, &ifr) < 0)
        fail_errno("eth0");
    set_addr(&ifr.ifr_netmask, htonl(prefix ? 0xFFFFFFFFu << (32 - prefix) : 0));
    if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        fail_errno("eth0");
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        fail_errno("eth0");
    struct rtentry route;
    memset(&route, 0, sizeof route);
    set_addr(&route.rt_dst, INADDR_ANY);
    set_addr(&route.rt_genmask, INADDR_ANY);
    set_addr(&route.rt_gateway, gw.s_addr);
    route.rt_flags = RTF_UP | RTF_GATEWAY;
    if (ioctl(s, SIOCADDRT, &route) < 0)
        fail_errno("the default route");
    close(s);
}

static const struct { const char *name; unsigned major, minor; } devices[] = {
    {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
};
static const char *const dev_links[][2] = {
    {"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
    {"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"},
};

/*
 * --privileged: every device node of the host's /dev (and its subdirectories but pts, shm, mqueue
 * and fd, which the container has of its own) is made in the container's /dev too, with the
 * host's mode and owner, as runc does for a privileged container (HostDevices). Rootless, each is
 * an empty file with the host's node bound over it. A node that cannot be made is left out.
 */
static void host_devices_into(const char *from_dir, const char *to_dir, int host_devices, int depth)
{
    static const char *const own[] = {"pts", "shm", "mqueue", "fd", "console", "ptmx", "core"};
    DIR *d = opendir(from_dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        int skip = e->d_name[0] == '.';
        for (size_t i = 0; depth == 0 && i < sizeof own / sizeof own[0]; i++)
            skip |= !strcmp(e->d_name, own[i]);
        char from[PATH_MAX], to[PATH_MAX];
        struct stat st, there;
        if (skip || snprintf(from, sizeof from, "%s/%s", from_dir, e->d_name) >= (int)sizeof from
            || snprintf(to, sizeof to, "%s/%s", to_dir, e->d_name) >= (int)sizeof to || lstat(from, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth < 4 && (mkdir(to, st.st_mode & 07777) == 0 || errno == EEXIST))
                host_devices_into(from, to, host_devices, depth + 1);
            continue;
        }
        if ((!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) || lstat(to, &there) == 0)
            continue;
        if (host_devices) {
            int fd = open(to, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
            if (fd >= 0) {
                close(fd);
                if (mount(from, to, NULL, MS_BIND, NULL) < 0)
                    unlink(to);
            }
        } else if (mknod(to, st.st_mode, st.st_rdev) == 0 && chown(to, st.st_uid, st.st_gid) < 0) {
            unlink(to);
        }
    }
    closedir(d);
}

/*
 * /dev: a small tmpfs with the usual nodes, a private devpts (newinstance), shm and mqueue.
 * Rootless (host_devices), mknod(2) of a device is refused in a user namespace, so each node is
 * an empty file with the host's node bound over it, as rootless runc does; and devpts gets no
 * gid= when group 5 is not mapped (tty_gid < 0), since it would refuse the mount (EINVAL).
 */
static void mount_dev(const char *root, int host_devices, int tty_gid, int privileged)
{
    char dev[PATH_MAX], p[PATH_MAX + 32], host[64], opts[96];
    secure_join(root, "/dev", dev, sizeof dev);
    mount_point(dev);
    do_mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");
    mode_t old = umask(0);
    for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dev, devices[i].name);
        if (host_devices) {
            int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
            if (fd < 0)
                fail_errno(p);
            close(fd);
            snprintf(host, sizeof host, "/dev/%s", devices[i].name);
            do_mount(host, p, NULL, MS_BIND, NULL);
        } else if (mknod(p, S_IFCHR | 0666, makedev(devices[i].major, devices[i].minor)) < 0) {
            fail_errno(p);
        }
    }
    umask(old);
    for (size_t i = 0; i < sizeof dev_links / sizeof dev_links[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dev, dev_links[i][0]);
        if (symlink(dev_links[i][1], p) < 0)
            fail_errno(p);
    }
    snprintf(p, sizeof p, "%s/pts", dev);
    if (mkdir(p, 0755) < 0)
        fail_errno(p);
    if (tty_gid >= 0)
        snprintf(opts, sizeof opts, "newinstance,ptmxmode=0666,mode=0620,gid=%d", tty_gid);
    else
        snprintf(opts, sizeof opts, "newinstance,ptmxmode=0666,mode=0620");
    do_mount("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC, opts);
    snprintf(p, sizeof p, "%s/shm", dev);
    if (mkdir(p, 01777) < 0)
        fail_errno(p);
    do_mount("shm", p, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k");
    snprintf(p, sizeof p, "%s/mqueue", dev);
    if (mkdir(p, 0755) < 0)
        fail_errno(p);
    do_mount("mqueue", p, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    if (privileged) {
        mode_t was = umask(0);
        host_devices_into("/dev", dev, host_devices, 0); /* the host's /dev: pivot_root has not happened yet */
        umask(was);
    }
}

/* The nosuid/nodev/noexec flags a mount has now, kept on a read-only remount (locked ones must stay). */
static unsigned long locked_flags(const char *path)
{
    struct statvfs sv;
    if (statvfs(path, &sv) < 0)
        fail_errno(path);
    return (sv.f_flag & ST_NOSUID ? MS_NOSUID : 0) | (sv.f_flag & ST_NODEV ? MS_NODEV : 0)
        | (sv.f_flag & ST_NOEXEC ? MS_NOEXEC : 0);
}

/* Bind a host path into the container; the mount point is made as Docker makes it. */
static void bind_mount(const char *root, const struct bind *b)
{
    char target[PATH_MAX];
    struct stat st;
    secure_join(root, b->destination, target, sizeof target);
    if (b->fstype) { /* a new, empty tmpfs (tmpfs(5)): its options as Docker merged them */
        if (make_dirs(target, 0755) < 0)
            fail_errno(target);
        do_mount("tmpfs", target, b->fstype, b->flags, b->data && *b->data ? b->data : NULL);
        return;
    }
    if (stat(b->source, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (make_dirs(target, 0755) < 0)
            fail_errno(target);
    } else {
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "%s", target);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
            *slash = '\0';
            if (make_dirs(parent, 0755) < 0)
                fail_errno(parent);
        }
        if (lstat(target, &st) < 0) {
            int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            if (fd < 0)
                fail_errno(target);
            close(fd);
        }
    }
    do_mount(b->source, target, NULL, MS_BIND | MS_REC, NULL);
    if (b->readonly) /* the kernel ignores MS_RDONLY on the first MS_BIND (mount(2)) */
        do_mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags(target), NULL);
}

/* Docker's masked paths: /dev/null over files, an empty read-only tmpfs over directories. */
static void mask(const char *root, const struct pid1_spec *s)
{
    char null[PATH_MAX], target[PATH_MAX];
    struct stat st;
    secure_join(root, "/dev/null", null, sizeof null);
    for (int i = 0; i < s->n_masked; i++) {
        snprintf(target, sizeof target, "%s%s", root, s->masked[i]);
        if (lstat(target, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode))
            do_mount("tmpfs", target, "tmpfs", MS_RDONLY, NULL);
        else
            do_mount(null, target, NULL, MS_BIND, NULL);
    }
    for (int i = 0; i < s->n_readonly; i++) {
        snprintf(target, sizeof target, "%s%s", root, s->readonly[i]);
        if (lstat(target, &st) < 0)
            continue;
        do_mount(target, target, NULL, MS_BIND | MS_REC, NULL);
        do_mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    }
}

static const char *env_get(const struct pid1_spec *s, const char *key)
{
    size_t k = strlen(key);
    const char *found = NULL;
    for (int i = 0; i < s->n_env; i++)
        if (!strncmp(s->env[i], key, k) && s->env[i][k] == '=')
            found = s->env[i] + k + 1; /* the last one wins, as in a dict */
    return found;
}

/* Find the program as Go's exec.LookPath does inside the container, with Docker's exit codes. */
static void lookup(const struct pid1_spec *s, char *out, size_t cap)
{
    const char *name = s->argv[0];
    char why[128];
    struct stat st;
    if (strchr(name, '/')) {
        if (stat(name, &st) < 0)
            fail(errno == ENOENT ? 127 : 126, "exec: \"%s\": stat %s: %s", name, name,
                 lower_strerror(errno, why, sizeof why));
        /* LookPath's findExecutable: a directory, like a file without an x bit, is fs.ErrPermission. */
        if (S_ISDIR(st.st_mode) || !(st.st_mode & 0111))
            fail(126, "exec: \"%s\": permission denied", name);
        snprintf(out, cap, "%s", name);
        return;
    }
    const char *path = env_get(s, "PATH");
    char search[4096];
    snprintf(search, sizeof search, "%s", path ? path : DEFAULT_PATH);
    char *dir = search;
    for (;;) {
        char *colon = strchr(dir, ':');
        if (colon)
            *colon = '\0';
        snprintf(out, cap, "%s/%s", *dir ? dir : ".", name);
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111))
            return;
        if (!colon)
            break;
        dir = colon + 1;
    }
    fail(127, "exec: \"%s\": executable file not found in $PATH", name);
}

/* The seccomp filter, read from the spec's file while host paths still mean the host's (load_seccomp). */
static struct sock_filter filter[BPF_MAXINSNS];
static struct sock_fprog filter_prog;

/*
 * Read the BPF program labkit compiled from the container's profile with libseccomp
 * (labkit/linux/seccomp.py): an array of struct sock_filter, as seccomp_export_bpf(3) writes it.
 */
static void load_seccomp(const char *path)
{
    if (!path)
        return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t got = 0;
    ssize_t n;
    if (fd < 0)
        fail(128, "error during container init: error loading seccomp filter: %s: %s", path, strerror(errno));
    while (got < sizeof filter && (n = read(fd, (char *)filter + got, sizeof filter - got)) > 0)
        got += (size_t)n;
    char extra;
    int too_long = got == sizeof filter && read(fd, &extra, 1) > 0;
    close(fd);
    if (!got || got % sizeof filter[0] || too_long)
        fail(128, "error during container init: error loading seccomp filter: %s is not a BPF program", path);
    filter_prog.len = (unsigned short)(got / sizeof filter[0]);
    filter_prog.filter = filter;
}

/*
 * Install the filter (seccomp(2), SECCOMP_SET_MODE_FILTER; prctl(2)'s PR_SET_SECCOMP on a kernel
 * without seccomp(2)). It holds for this process and everything it execs or forks, and cannot be
 * removed. Unprivileged, the kernel wants no_new_privs set first, which become() has done.
 */
static void install_seccomp(void)
{
    if (!filter_prog.len)
        return;
    long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &filter_prog);
    if (rc < 0 && errno == ENOSYS)
        rc = prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filter_prog, 0, 0);
    if (rc < 0)
        fail(128, "error during container init: error loading seccomp filter into kernel: %s", strerror(errno));
}

struct cap_header { unsigned version; int pid; };
struct cap_data { unsigned effective, permitted, inheritable; };

/* Who -u names, read from the container's own /etc/passwd and /etc/group. */
struct who {
    uid_t uid;
    gid_t gid;
    char name[256], home[PATH_MAX];
    gid_t groups[64];
    int n_groups;
};

/* One line of /etc/passwd or /etc/group cut at ':' into its fields; returns how many. */
static int split_fields(char *line, char **fields, int max)
{
    int n = 0;
    line[strcspn(line, "\n")] = '\0';
    fields[n++] = line;
    for (char *p = line; *p && n < max; p++)
        if (*p == ':') {
            *p = '\0';
            fields[n++] = p + 1;
        }
    return n;
}

static int is_number(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* Whether `name` is one of the comma-separated members of a group line's last field. */
static int listed(const char *members, const char *name)
{
    size_t k = strlen(name);
    for (const char *p = members; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == k && !strncmp(p, name, k))
            return 1;
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

/*
 * -u USER[:GROUP] as runc reads it (libcontainer/user, GetExecUser), in the container's files
 * (called after pivot_root or chroot, so /etc/passwd is the image's): a name must be in
 * /etc/passwd (a group name in /etc/group); a number need not be, and then its group is 0 and its
 * home /. The supplementary groups are the primary one and those /etc/group lists the user's name in.
 */
static void resolve_user(const char *spec, struct who *w)
{
    char user[256], group[256] = "", line[4096], *f[8];
    const char *colon = strchr(spec, ':');
    snprintf(user, sizeof user, "%.*s", colon ? (int)(colon - spec) : (int)strlen(spec), spec);
    if (colon)
        snprintf(group, sizeof group, "%s", colon + 1);
    memset(w, 0, sizeof *w);
    snprintf(w->home, sizeof w->home, "/");
    int numeric = is_number(user) || !*user, found = 0;
    w->uid = *user ? (uid_t)strtoul(user, NULL, 10) : 0;
    FILE *pw = fopen("/etc/passwd", "re");
    while (pw && fgets(line, sizeof line, pw))
        if (split_fields(line, f, 7) >= 7 && is_number(f[2])
            && (numeric ? (uid_t)strtoul(f[2], NULL, 10) == w->uid : !strcmp(f[0], user))) {
            w->uid = (uid_t)strtoul(f[2], NULL, 10);
            w->gid = (gid_t)strtoul(f[3], NULL, 10);
            snprintf(w->name, sizeof w->name, "%s", f[0]);
            snprintf(w->home, sizeof w->home, "%s", *f[5] ? f[5] : "/");
            found = 1;
            break;
        }
    if (pw)
        fclose(pw);
    if (!found && !numeric)
        fail(128, "unable to find user %s: no matching entries in passwd file", user);
    int group_numeric = is_number(group), group_found = !*group;
    if (group_numeric)
        w->gid = (gid_t)strtoul(group, NULL, 10);
    FILE *gr = fopen("/etc/group", "re");
    while (gr && fgets(line, sizeof line, gr)) {
        int n = split_fields(line, f, 4);
        if (n < 3 || !is_number(f[2]))
            continue;
        gid_t gid = (gid_t)strtoul(f[2], NULL, 10);
        if (*group && !group_found && (group_numeric ? gid == w->gid : !strcmp(f[0], group))) {
            w->gid = gid;
            group_found = 1;
        }
        if (found && n == 4 && listed(f[3], w->name) && w->n_groups < 64)
            w->groups[w->n_groups++] = gid;
    }
    if (gr)
        fclose(gr);
    if (!group_found && !group_numeric)
        fail(128, "unable to find group %s: no matching entries in group file", group);
    /* The primary group is a supplementary one too, as Docker has given it since CVE-2023-25173. */
    int has_primary = 0;
    for (int i = 0; i < w->n_groups; i++)
        has_primary |= w->groups[i] == w->gid;
    if (!has_primary && w->n_groups < 64) {
        memmove(w->groups + 1, w->groups, (size_t)w->n_groups * sizeof w->groups[0]);
        w->groups[0] = w->gid;
        w->n_groups++;
    }
}

/* --ulimit: each limit set while this process may still lower them all (raising a hard limit above
 * the one it has needs CAP_SYS_RESOURCE, setrlimit(2)); the command and its children inherit them. */
static void set_rlimits(const struct pid1_spec *s)
{
    char why[128];
    for (int i = 0; i < s->n_rlimits; i++) {
        struct rlimit r = {s->rlimits[i].soft < 0 ? RLIM_INFINITY : (rlim_t)s->rlimits[i].soft,
                           s->rlimits[i].hard < 0 ? RLIM_INFINITY : (rlim_t)s->rlimits[i].hard};
        if (setrlimit(s->rlimits[i].resource, &r) < 0)
            fail(128, "error during container init: error setting rlimit type %d: %s", s->rlimits[i].resource,
                 lower_strerror(errno, why, sizeof why));
    }
}

/*
 * Become -u's user: supplementary groups, group, then user (setgroups(2), setgid(2), setuid(2)),
 * keeping the permitted capabilities across setuid (PR_SET_KEEPCAPS) so that capset can still
 * give the command its set; execve(2) then clears them for a uid other than 0 (capabilities(7):
 * no file capabilities, no ambient ones), so a user's CapEff is 0 and its bounding set the
 * container's, as in Docker. A user namespace whose setgroups is "deny" keeps its groups.
 */
static void switch_user(const struct who *w)
{
    char why[128];
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        fail_errno("PR_SET_KEEPCAPS");
    if (setgroups((size_t)w->n_groups, w->groups) < 0) {
        char said[16] = "";
        int fd = open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, said, sizeof said - 1) < 0 || strncmp(said, "deny", 4))
            fail(128, "error during container init: setgroups: %s", lower_strerror(errno, why, sizeof why));
        if (fd >= 0)
            close(fd);
    }
    if (setgid(w->gid) < 0)
        fail(128, "error during container init: setgid %u: %s (is the group mapped in this container's user "
                  "namespace?)", (unsigned)w->gid, lower_strerror(errno, why, sizeof why));
    if (setuid(w->uid) < 0)
        fail(128, "error during container init: setuid %u: %s (is the user mapped in this container's user "
                  "namespace?)", (unsigned)w->uid, lower_strerror(errno, why, sizeof why));
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
        fail_errno("PR_SET_KEEPCAPS");
}

/* Keep only the capabilities in `keep`: bounding set, ambient set, [-u's user,] then capset (capabilities(7)). */
static void restrict_caps(unsigned long long keep, int last_cap, const struct who *user)
{
    if (last_cap < 63)
        keep &= (1ULL << (last_cap + 1)) - 1; /* --privileged's "every capability" is every one this kernel has */
    for (int n = 0; n <= last_cap; n++)
        if (!(keep >> n & 1) && prctl(PR_CAPBSET_DROP, n, 0, 0, 0) < 0)
            fail_errno("the bounding set");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        fail_errno("the ambient set");
    if (user)
        switch_user(user);
    struct cap_header h = {0x20080522, 0}; /* _LINUX_CAPABILITY_VERSION_3 */
    struct cap_data d[2] = {{(unsigned)keep, (unsigned)keep, 0}, {(unsigned)(keep >> 32), (unsigned)(keep >> 32), 0}};
    if (syscall(SYS_capset, &h, d) < 0)
        fail_errno("capset");
}

static int read_last_cap(void)
{
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    char buf[16] = "";
    if (fd < 0 || read(fd, buf, sizeof buf - 1) <= 0)
        fail_errno("/proc/sys/kernel/cap_last_cap");
    close(fd);
    return atoi(buf);
}

#define CGROUP_SUPER_MAGIC 0x27e0eb     /* <linux/magic.h> */

/*
 * The file through which the calling process joins the cgroup whose cgroup.procs
 * is `procs` (written with "0"), and the joining itself (join_cgroup).
 *
 * Moving a whole thread group write-locks the global cgroup_threadgroup_rwsem,
 * a percpu rwsem whose writer waits for an RCU grace period unless another
 * writer came just before: 10-20 ms on an idle machine, more than the rest of
 * the container's start. On a v1 hierarchy, writing "0" to `tasks` moves only
 * the calling thread, and the kernel skips that lock for it
 * (kernel/cgroup/cgroup.c, cgroup_procs_write_start: "If we migrate a single
 * thread, we don't care about threadgroup stability"). Here the thread is the
 * whole process: PID 1 has no other thread before it execs. v2 has no `tasks`
 * file; there the shim clones PID 1 straight into its cgroup (CLONE_INTO_CGROUP)
 * and this is only the fallback.
 */
static void join_path(const char *procs, char *path, size_t cap)
{
    struct statfs fs;
    snprintf(path, cap, "%s", procs);
    char *slash = strrchr(path, '/');
    if (slash && statfs(procs, &fs) == 0 && fs.f_type == CGROUP_SUPER_MAGIC)
        snprintf(slash + 1, cap - (size_t)(slash + 1 - path), "tasks");
}

static void join_cgroup(const char *procs)
{
    char path[PATH_MAX];
    join_path(procs, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) < 0)
        fail_errno(path);
    close(fd);
}

/*
 * The last steps before execve(2), shared by PID 1 and exec: find the program,
 * capabilities down to the spec's set, no_new_privs, every signal at its
 * default, the umask, nothing of ours but 0-2 and the close-on-exec error pipe,
 * and last the seccomp filter: from there on only execve(2) runs (or, if it
 * fails, the write(2) of why and exit_group(2)), so a profile that lets
 * execve(2) through lets the container start.
 */
static void __attribute__((noreturn)) become(const struct pid1_spec *s, int last_cap)
{
    char why[128];
    char program[PATH_MAX];
    static struct who user;
    static char home[PATH_MAX + 8];
    static char *envp[PID1_MAX_LIST + 2];
    /* Without -u the command is root with root's supplementary groups, as Docker gives them: moby's
     * getUser reads the image's /etc/passwd and /etc/group for the empty user too (its primary group,
     * and each group that lists "root"). */
    resolve_user(s->user ? s->user : "", &user);
    lookup(s, program, sizeof program);
    set_rlimits(s);
    restrict_caps(s->caps, last_cap, &user);
    int n_env = 0;
    for (int i = 0; i < s->n_env; i++)
        envp[n_env++] = s->env[i];
    if (s->user && !env_get(s, "HOME")) { /* the user's home, as Docker sets it for -u */
        snprintf(home, sizeof home, "HOME=%s", user.home);
        envp[n_env++] = home;
    }
    envp[n_env] = NULL;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        fail_errno("no_new_privs");
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL); /* an ignored signal would stay ignored across execve(2) */
    sigset_t set;
    if (s->block_signals)
        sigfillset(&set); /* labkit-init as PID 1 installs its own mask; a signal before that stays pending */
    else
        sigemptyset(&set);
    sigprocmask(SIG_SETMASK, &set, NULL);
    umask(022);
    if (fcntl(error_fd, F_SETFD, FD_CLOEXEC) < 0)
        fail_errno("the error pipe");
    /* Nothing of the starter's but 0-2 and the error pipe (close-on-exec) crosses execve(2). */
    if (error_fd > 3)
        syscall(SYS_close_range, 3, error_fd - 1, 0);
    syscall(SYS_close_range, error_fd + 1, ~0U, 0);
    install_seccomp();
    execve(program, s->argv, envp);
    int err = errno;
    fail(err == ENOENT ? 127 : 126, "exec %s: %s", program, lower_strerror(err, why, sizeof why));
}

#define CGROUP2_SUPER_MAGIC 0x63677270 /* <linux/magic.h> */

/* Whether the directory holding `procs` (a cgroup.procs file) is on a cgroup v2 hierarchy. */
static int on_v2(const char *procs, char *dir, size_t cap)
{
    struct statfs fs;
    snprintf(dir, cap, "%s", procs);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return 0;
    *slash = '\0';
    return statfs(dir, &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

/* fork(2) with the child born in the cgroup v2 group open as `dirfd`; -1 (errno set) if the kernel cannot. */
static pid_t clone_into(int dirfd)
{
#ifdef CLONE_INTO_CGROUP
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = (unsigned long long)dirfd;
    return (pid_t)syscall(SYS_clone3, &args, sizeof args);
#else
    (void)dirfd;
    errno = ENOSYS;
    return -1;
#endif
}

/*
 * fork(2), the child born in the first cgroup v2 group of spec's list when the
 * kernel can (clone3(2) with CLONE_INTO_CGROUP, Linux 5.7): a process created in
 * its cgroup is never migrated, and a migration costs an RCU grace period (see
 * join_cgroup). *born_in says which group that was (-1: plain fork(2), and the
 * child joins every group itself).
 */
pid_t fork_in_cgroup(const struct pid1_spec *spec, int *born_in)
{
    char dir[PATH_MAX];
    *born_in = -1;
    for (int i = 0; i < spec->n_cgroups; i++) {
        if (!on_v2(spec->cgroups[i], dir, sizeof dir))
            continue;
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        pid_t child = fd < 0 ? -1 : clone_into(fd);
        if (fd >= 0)
            close(fd);
        if (child >= 0) {
            *born_in = i;
            return child;
        }
        break; /* ENOSYS, or a group the kernel refuses to clone into: fork and join */
    }
    return fork();
}

/*
 * The container sees its own cgroups at /sys/fs/cgroup, read-only, as Docker mounts them.
 *
 * A host whose /sys/fs/cgroup is cgroup2 (v2 only): a cgroup2 mount made inside the container's
 * cgroup namespace has that namespace's root, the container's group, as its root
 * (cgroup_namespaces(7)), so the container reads its memory.max, pids.max, cpu.max and
 * cgroup.events and nothing above them.
 *
 * A v1 or hybrid host: a tmpfs at /sys/fs/cgroup with, for each v1 hierarchy the container was
 * put in, its own group bound read-only at /sys/fs/cgroup/<hierarchy> (memory/memory.limit_in_bytes,
 * pids/pids.max, ...), as runc does for Docker there. Hierarchies without a group of the
 * container's are left out (their view would be of another group), and so is the hybrid host's
 * cgroup2 beside them ("unified"), which Docker leaves out too.
 *
 * Called before pivot_root, while /sys/fs/cgroup is still the host's.
 */
static void mount_cgroups(const char *root, const struct pid1_spec *s)
{
    struct statfs host;
    char p[PATH_MAX];
    if (statfs("/sys/fs/cgroup", &host) < 0)
        return;
    secure_join(root, "/sys/fs/cgroup", p, sizeof p);
    if (host.f_type == 0x63677270) { /* CGROUP2_SUPER_MAGIC */
        /* EPERM: a user namespace that does not own the cgroup namespace. EBUSY: /sys is the host's own,
         * bound recursively (rootless in the host's network namespace cannot mount a sysfs, above), so the
         * host's cgroup2 is already at this mount point, and the kernel refuses the same superblock on the
         * same mount point (do_add_mount, fs/namespace.c); the container sees what that bind shows. */
        if (mount("cgroup2", p, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL) < 0 && errno != EPERM &&
            errno != EBUSY)
            fail_errno(p);
        return;
    }
    int mounted = 0;
    for (int i = 0; i < s->n_cgroups; i++) {
        const char *procs = s->cgroups[i], *prefix = "/sys/fs/cgroup/";
        char dir[PATH_MAX], name[NAME_MAX + 1], target[PATH_MAX];
        struct statfs group;
        if (strncmp(procs, prefix, strlen(prefix)) != 0)
            continue;
        const char *start = procs + strlen(prefix), *slash = strchr(start, '/'), *last = strrchr(procs, '/');
        if (!slash || slash - start > NAME_MAX || last <= slash)
            continue;
        snprintf(name, sizeof name, "%.*s", (int)(slash - start), start);
        snprintf(dir, sizeof dir, "%.*s", (int)(last - procs), procs);
        if (statfs(dir, &group) < 0 || group.f_type == 0x63677270) /* the hybrid host's cgroup2: not shown */
            continue;
        if (!mounted) {
            /* EPERM: rootless, where the v1 groups are not the container's to show */
            if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755") < 0) {
                if (errno == EPERM)
                    return;
                fail_errno(p);
            }
            mounted = 1;
        }
        snprintf(target, sizeof target, "%s/%s", p, name);
        mount_point(target);
        do_mount(dir, target, NULL, MS_BIND, NULL);
        /* the kernel ignores MS_RDONLY on the first MS_BIND (mount(2)) */
        do_mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    }
}

/*
 * The container's terminal (-t): a new pseudo-terminal from the devpts instance mounted at
 * /dev/pts in this container (newinstance: its own numbering, not the host's, devpts(5)),
 * opened through /dev/ptmx -> pts/ptmx after pivot_root, as runc does. Its master goes to
 * the supervisor over s->console_fd (SCM_RIGHTS) and this process keeps no copy; the slave
 * becomes the controlling terminal of a new session (setsid(2), TIOCSCTTY, tty_ioctl(4)) and
 * 0-2. The caller's own terminal is never involved: only the supervisor's relay touches both.
 */
static void open_console(const struct pid1_spec *s)
{
    char name[64];
    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || unlockpt(master) < 0)
        fail_errno("/dev/ptmx");
    if (s->rows && s->cols) {
        struct winsize ws = {.ws_row = s->rows, .ws_col = s->cols};
        if (ioctl(master, TIOCSWINSZ, &ws) < 0)
            fail_errno("/dev/ptmx");
    }
    int slave = -1;
#ifdef TIOCGPTPEER
    slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC); /* no path to look up (Linux 4.13) */
#endif
    if (slave < 0) {
        if (ptsname_r(master, name, sizeof name) != 0)
            fail_errno("/dev/ptmx");
        slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave < 0)
            fail_errno(name);
    }
    if (console_send_fd(s->console_fd, master) < 0)
        fail_errno("the console socket");
    close(master);
    close(s->console_fd);
    if (setsid() < 0 && errno != EPERM) /* exec's command has its session already */
        fail_errno("setsid");
    if (ioctl(slave, TIOCSCTTY, 0) < 0)
        fail_errno("TIOCSCTTY");
    for (int fd = 0; fd < 3; fd++)
        if (dup2(slave, fd) < 0)
            fail_errno("the terminal");
    close(slave);
}

void pid1_run(const struct pid1_spec *s)
{
    error_fd = s->error_fd;
    int last_cap = read_last_cap(); /* before pivot_root: the new /proc is the container's */
    load_seccomp(s->seccomp);
    for (int i = 0; i < s->n_cgroups; i++)
        if (i != s->born_in)
            join_cgroup(s->cgroups[i]);
    int flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP;
    if (s->new_net)
        flags |= CLONE_NEWNET;
    if (unshare(flags) < 0)
        fail_errno("unshare");
    if (s->ready_fd >= 0) { /* our network namespace exists: the starter attaches a network to it, then says "go" */
        char go = 0;
        if (write(s->ready_fd, "1", 1) != 1 || close(s->ready_fd) < 0 || read(s->go_fd, &go, 1) != 1 || go != '1')
            fail(128, "error during container init: the container's network could not be set up");
        close(s->go_fd);
    }
    if (s->netns) { /* the engine made and wired this network namespace (veth, address, route) */
        int fd = open(s->netns, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
            fail_errno(s->netns);
        close(fd);
    }
    if (s->netns && s->eth0 && s->gateway) {
        configure_eth0(s->eth0, s->gateway);
        loopback_up();
    }
    if (s->hostname && *s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0)
        fail_errno("sethostname");
    do_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL); /* nothing propagates back to the host */
    if (s->new_net)
        loopback_up();
    char root[PATH_MAX], p[PATH_MAX];
    if (!realpath(s->root, root))
        fail_errno(s->root);
    if (s->overlay) /* rootless: overlayfs mounts only in a mount namespace of our user namespace */
        mount_overlay(root, s->overlay, s->lowerdir_plus);
    do_mount(root, root, NULL, MS_BIND | MS_REC, NULL);
    secure_join(root, "/proc", p, sizeof p);
    mount_point(p);
    do_mount("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount_dev(root, s->host_devices, s->tty_gid, s->privileged);
    secure_join(root, "/sys", p, sizeof p);
    mount_point(p);
    /* read-only unless --privileged, as Docker mounts it */
    if (mount("sysfs", p, "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | (s->privileged ? 0 : MS_RDONLY), NULL) < 0) {
        if (errno != EPERM)
            fail_errno(p);
        do_mount("/sys", p, NULL, MS_BIND | MS_REC, NULL);
        do_mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | (s->privileged ? 0 : MS_RDONLY) | locked_flags(p), NULL);
    }
    mount_cgroups(root, s);
    for (int i = 0; i < s->n_binds; i++) /* the starter sorted them, parents first */
        bind_mount(root, &s->binds[i]);
    mask(root, s);
    if (chdir(root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
        fail_errno(root);
    if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0) /* the old root goes: no path leads back */
        fail_errno("/");
    char why[128];
    if (make_dirs(s->cwd, 0755) < 0 && errno == ENOTDIR)
        fail(128, "chdir to cwd (\"%s\") set in config.json failed: not a directory", s->cwd);
    if (chdir(s->cwd) < 0)
        fail(128, "chdir to cwd (\"%s\") set in config.json failed: %s", s->cwd,
             lower_strerror(errno, why, sizeof why));
    if (s->readonly_rootfs) /* --read-only: / alone; /dev, /proc, volumes and tmpfs mounts keep their own mode */
        do_mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags("/"), NULL);
    if (s->tty)
        open_console(s);
    else if (dup2(s->out_fd, 1) < 0 || dup2(s->err_fd, 2) < 0 || (s->stdin_fd >= 0 && dup2(s->stdin_fd, 0) < 0))
        fail_errno("stdout");

    become(s, last_cap);
}

static pid_t exec_child;

/* The exec's waiter passes on what would have ended the command had it stayed in the caller's session. */
static void forward_signal(int sig)
{
    kill(exec_child, sig);
}

/*
 * `docker exec`: one more process in the running container whose PID 1 is `target`
 * (host PID). Its namespaces are opened first, then joined (setns(2)) after the
 * cgroups: a namespace the container shares with the host (--network host) is
 * skipped. Joining a PID namespace places only the children of the caller in it,
 * so this process forks; the child starts a session of its own (setsid(2)), so
 * that the caller's terminal is not its controlling terminal and /dev/tty leads
 * nowhere (tty(4)), enters the container's root (/proc/PID/root), its working
 * directory, and becomes the command. Its 0-2 are this process's: pipes the
 * starter relays (stdio.py), never the caller's terminal. This process waits for
 * it, passing on SIGINT, SIGTERM, SIGHUP and SIGQUIT (Ctrl-C at the caller's
 * terminal reaches this process, no longer the command in its own session), and
 * exits with its code (128+N when signal N killed it), so the engine's waitpid(2)
 * of the shim gives the command's code (process.exec_in).
 */
/*
 * `exec -t`: relay the command's terminal between its master and the caller's connection
 * until the command exits (a pidfd, pidfd_open(2), says when), then pass on what it wrote
 * last. A caller that detaches leaves the command running; its output is then read and
 * dropped, so that it never blocks on a full terminal.
 */
static void relay_exec(int master, int attach_fd, pid_t child)
{
    struct console c;
    char buf[16384];
    console_init(&c);
    c.master = master;
    console_add_client(&c, attach_fd);
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    int pidfd = (int)syscall(SYS_pidfd_open, child, 0);
    int master_open = 1;
    for (;;) {
        struct pollfd fds[2 + CONSOLE_MAX_CLIENTS + 1];
        int n = 0;
        fds[n++] = (struct pollfd){master_open ? master : -1, POLLIN, 0};
        fds[n++] = (struct pollfd){pidfd, POLLIN, 0};
        int m = console_pollfds(&c, fds + n);
        int ready = poll(fds, (nfds_t)(n + m), pidfd < 0 ? 100 : -1);
        if (ready < 0 && errno != EINTR)
            break;
        if (ready <= 0) {
            siginfo_t info = {0};
            if (pidfd < 0 && (waitid(P_PID, (id_t)child, &info, WEXITED | WNOHANG | WNOWAIT) < 0 || info.si_pid))
                break; /* no pidfd (before Linux 5.3): look every 100 ms */
            continue;
        }
        if (fds[0].revents) {
            ssize_t got = read(master, buf, sizeof buf);
            if (got > 0)
                console_broadcast(&c, buf, (size_t)got);
            else if (got == 0 || (errno != EAGAIN && errno != EINTR))
                master_open = 0; /* EIO: every holder of the slave has closed it */
        }
        if (fds[1].revents)
            break;
        console_handle(&c, fds + n, m);
    }
    for (ssize_t got; master_open && (got = read(master, buf, sizeof buf)) > 0;)
        console_broadcast(&c, buf, (size_t)got); /* what it wrote before it exited */
    console_close_clients(&c);
    close(master);
    if (pidfd >= 0)
        close(pidfd);
}

void exec_run(const struct pid1_spec *s, int target, int attach_fd)
{
    static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    sigset_t block, old;
    sigemptyset(&block);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaddset(&block, forwarded[i]);
    /* A rootless container's user namespace comes first of those joined here: it grants the
     * capabilities that joining the others needs (setns(2)). A root container shares the host's. */
    static const struct { const char *name; int type; } order[] = {
        {"cgroup", CLONE_NEWCGROUP}, {"user", CLONE_NEWUSER}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},
        {"net", CLONE_NEWNET}, {"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS},
    };
    enum { N = sizeof order / sizeof order[0] };
    int fds[N];
    char path[96], mine[64], theirs[64], why[128];
    error_fd = s->error_fd;
    int last_cap = read_last_cap();
    load_seccomp(s->seccomp); /* a host path: read before the container's mount namespace is joined */
    for (int i = 0; i < N; i++) {
        fds[i] = -1;
        snprintf(path, sizeof path, "/proc/%d/ns/%s", target, order[i].name);
        ssize_t a = readlink(path, theirs, sizeof theirs - 1);
        if (a < 0)
            fail(126, "container process %d is not running", target);
        theirs[a] = '\0';
        snprintf(mine, sizeof mine, "/proc/self/ns/%s", order[i].name);
        char own[64];
        ssize_t b = readlink(mine, own, sizeof own - 1);
        if (b >= 0) {
            own[b] = '\0';
            if (!strcmp(own, theirs))
                continue; /* shared with the host: nothing to join */
        }
        fds[i] = open(path, O_RDONLY | O_CLOEXEC);
        if (fds[i] < 0)
            fail(126, "container process %d is not running", target);
    }
    snprintf(path, sizeof path, "/proc/%d/root", target);
    int root_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        fail(126, "container process %d is not running", target);
    /* The cgroups, opened while their paths still mean the host's (before the mount namespace
     * changes): v1 `tasks` files to write "0" into, and a v2 group to clone the command into. */
    int join[16], n_join = 0, v2_dir = -1, v2_procs = -1;
    char dir[PATH_MAX];
    for (int i = 0; i < s->n_cgroups && n_join < 16; i++) {
        if (v2_dir < 0 && on_v2(s->cgroups[i], dir, sizeof dir)) {
            v2_dir = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            v2_procs = open(s->cgroups[i], O_WRONLY | O_CLOEXEC);
            continue;
        }
        char path[PATH_MAX];
        join_path(s->cgroups[i], path, sizeof path);
        join[n_join] = open(path, O_WRONLY | O_CLOEXEC);
        if (join[n_join] < 0)
            fail(126, "%s: %s", s->cgroups[i], strerror(errno));
        n_join++;
    }
    /* Every namespace but the cgroup one, which the command joins after its cgroups: a
     * migration decided from inside it may be refused (cgroup2's nsdelegate, cgroups(7)). */
    for (int i = 1; i < N; i++)
        if (fds[i] >= 0 && (setns(fds[i], order[i].type) < 0 || close(fds[i]) < 0))
            fail(126, "setns %s: %s", order[i].name, strerror(errno));
    /* Born in the container's cgroup v2 group where the kernel can (no migration); the v1
     * groups through `tasks`, as PID 1 joined them (see join_cgroup). The signals this
     * process forwards are held until it knows whom to forward them to. */
    static struct pid1_spec with_console;
    int pair[2] = {-1, -1};
    with_console = *s;
    if (s->tty) {
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
            fail(126, "socketpair: %s", strerror(errno));
        with_console.console_fd = pair[1];
    }
    sigprocmask(SIG_BLOCK, &block, &old);
    pid_t child = v2_dir >= 0 ? clone_into(v2_dir) : -1;
    int born = child >= 0;
    if (child < 0)
        child = fork();
    if (child < 0)
        fail(126, "fork: %s", strerror(errno));
    if (child == 0) {
        if (setsid() < 0) /* become() unblocks the signals held back around the fork */
            fail(126, "setsid: %s", strerror(errno));
        if (!born && v2_procs >= 0)
            join[n_join++] = v2_procs;
        for (int i = 0; i < n_join; i++)
            if (write(join[i], "0", 1) < 0)
                fail(126, "joining the container's cgroups: %s", strerror(errno));
        if (fds[0] >= 0 && setns(fds[0], order[0].type) < 0)
            fail(126, "setns %s: %s", order[0].name, strerror(errno));
        if (fchdir(root_fd) < 0 || chroot(".") < 0)
            fail(126, "chroot: %s", strerror(errno));
        close(root_fd);
        if (chdir(s->cwd) < 0)
            fail(126, "chdir to cwd (\"%s\") set in config.json failed: %s", s->cwd,
                 lower_strerror(errno, why, sizeof why));
        if (s->tty) {
            close(pair[0]);
            close(attach_fd);
            open_console(&with_console);
        }
        become(s, last_cap);
    }
    close(root_fd);
    close(error_fd); /* the child holds it until its execve(2) closes it */
    exec_child = child;
    struct sigaction forward;
    memset(&forward, 0, sizeof forward);
    forward.sa_handler = forward_signal;
    sigemptyset(&forward.sa_mask);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaction(forwarded[i], &forward, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (s->tty) {
        close(pair[1]);
        int master = console_recv_fd(pair[0]); /* -1: the command failed before (its error pipe says why) */
        close(pair[0]);
        if (master >= 0)
            relay_exec(master, attach_fd, child);
    }
    int status;
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            _exit(126);
    _exit(WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status));
}
