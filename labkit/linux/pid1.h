/* pid1.h: what the shim tells a container's first process to build (see pid1.c). */
#ifndef LABKIT_PID1_H
#define LABKIT_PID1_H

#include <sys/types.h>

#define PID1_MAX_LIST 256

struct bind {
    const char *source, *destination;
    int readonly;
    const char *fstype;                 /* "tmpfs" for a new tmpfs (--tmpfs, --mount type=tmpfs), else NULL: a bind */
    unsigned long flags;                /* its mount(2) flags */
    const char *data;                   /* its tmpfs(5) options */
};

struct rlimit_spec {
    int resource;                       /* RLIMIT_* (setrlimit(2)) */
    long long soft, hard;               /* -1: RLIM_INFINITY */
};

struct pid1_spec {
    const char *root;                   /* the merged overlay directory, mounted by the engine */
    const char *cwd, *hostname;
    const char *netns;                  /* a network namespace to join, or NULL */
    int new_net;                        /* unshare a network namespace of its own (--network none) */
    const char *eth0;                   /* ADDRESS/PREFIXLEN for eth0 in netns, or NULL */
    const char *gateway;                /* the default route's gateway with eth0 */
    const char *cgroups[16];            /* cgroup.procs files to join */
    int n_cgroups;
    int born_in;                        /* index of the cgroup PID 1 was cloned into (-1: none) */
    struct bind binds[64];              /* parents first */
    int n_binds;
    const char *masked[64], *readonly[64];
    int n_masked, n_readonly;
    char *env[PID1_MAX_LIST + 1];
    int n_env;
    char *argv[PID1_MAX_LIST + 1];
    int n_argv;
    int readonly_rootfs, block_signals;
    /* Rootless (a user namespace the shim made): */
    const char *overlay;                /* overlay options PID 1 mounts at root itself, or NULL */
    int lowerdir_plus;                  /* a deep overlay: try fsconfig's "lowerdir+" first (0: descriptors at once) */
    int host_devices;                   /* bind the host's device nodes: mknod(2) is refused in a user namespace */
    int tty_gid;                        /* devpts's gid= (tty, 5), or -1 where that group is not mapped */
    int ready_fd, go_fd;                /* say "my network namespace exists", then wait for "go" (-1: no one asks) */
    unsigned long long caps;            /* the capabilities the command keeps */
    const char *user;                   /* -u: "uid[:gid]" or names of the container's /etc/passwd, group (NULL: root) */
    struct rlimit_spec rlimits[16];     /* --ulimit, set before the command starts */
    int n_rlimits;
    int privileged;                     /* --privileged: sysfs writable, the host's devices in /dev */
    const char *seccomp;                /* a file of BPF instructions installed last, before execve (NULL: none) */
    int error_fd, out_fd, err_fd;
    /* A terminal (-t): a new pseudo-terminal from the container's devpts is the command's 0-2 and
     * controlling terminal; its master goes to the supervisor over console_fd (console.c). */
    int tty;
    unsigned short rows, cols;          /* its first window size (0: none given) */
    int console_fd;
    int stdin_fd;                       /* -i without -t: the read end of PID 1's stdin pipe (-1: /dev/null) */
};

/* Build the container around the calling process (PID 1 of its new PID namespace), then execve. */
void pid1_run(const struct pid1_spec *spec) __attribute__((noreturn));

/* fork(2), the child born in spec's cgroup v2 group if it has one (clone3 CLONE_INTO_CGROUP). */
pid_t fork_in_cgroup(const struct pid1_spec *spec, int *born_in);

/* Run spec's command inside the running container whose PID 1 is `target`; exit with its code.
 * With spec->tty, `attach_fd` is the caller's connection to the command's terminal (console.c). */
void exec_run(const struct pid1_spec *spec, int target, int attach_fd) __attribute__((noreturn));

#endif
