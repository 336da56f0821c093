/*
 * probe: make the system calls a container should not be able to make, and say what the kernel answered.
 *
 * usage: probe CALL...   Each CALL prints one line, "CALL ok" or "CALL ERRNO-NAME" (EPERM, ENOSYS, ...).
 * Built static by the tests (gcc -static) and mounted into a busybox container, which has no keyctl.
 *
 *   unshare-user     unshare(CLONE_NEWUSER)
 *   clone-newuser    clone(CLONE_NEWUSER | SIGCHLD); the child exits at once
 *   clone3           clone3() without flags (Docker's profile answers ENOSYS, so a C library falls back to clone)
 *   fork             clone(SIGCHLD), as fork(2) does: allowed
 *   keyctl           keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0): finds, never creates, a keyring
 *   add_key          add_key("user", ...) into the process keyring, which dies with this process
 *   request_key      request_key("user", ...)
 *   bpf              bpf(BPF_MAP_CREATE) with an empty attribute (EINVAL where the call is let through)
 *   perf_event_open  perf_event_open() with an empty attribute
 *   socket-vsock     socket(AF_VSOCK, SOCK_STREAM)
 *   socket-inet      socket(AF_INET, SOCK_STREAM): allowed
 *   personality      personality(ADDR_NO_RANDOMIZE)
 *   mount-cgroup     mount a cgroup v1 memory hierarchy at /tmp/cg
 *   mkdir            mkdir /tmp/probe-dir
 *   lift             the attack: unshare user, mount and cgroup namespaces, mount the memory and pids
 *                    hierarchies (rooted at the container's own groups), write their limits to unlimited
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/sched.h>

static void say(const char *what, long rc)
{
    if (rc < 0)
        printf("%s %s\n", what, strerrorname_np(errno));
    else
        printf("%s ok\n", what);
    fflush(stdout);
}

static long child(long pid)
{
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid((pid_t)pid, NULL, 0);
    return pid;
}

static long put(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    long n = write(fd, text, strlen(text));
    close(fd);
    return n < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    char attr[128] = {0};
    for (int i = 1; i < argc; i++) {
        const char *c = argv[i];
        if (!strcmp(c, "unshare-user"))
            say(c, unshare(CLONE_NEWUSER));
        else if (!strcmp(c, "clone-newuser"))
            say(c, child(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)));
        else if (!strcmp(c, "clone3")) {
            struct clone_args a;
            memset(&a, 0, sizeof a);
            a.exit_signal = SIGCHLD;
            say(c, child(syscall(SYS_clone3, &a, sizeof a)));
        } else if (!strcmp(c, "fork"))
            say(c, child(syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0)));
        else if (!strcmp(c, "keyctl"))
            say(c, syscall(SYS_keyctl, 0, -4, 0));
        else if (!strcmp(c, "add_key"))
            say(c, syscall(SYS_add_key, "user", "labkit-probe", "x", 1, -2));
        else if (!strcmp(c, "request_key"))
            say(c, syscall(SYS_request_key, "user", "labkit-probe", NULL, 0));
        else if (!strcmp(c, "bpf"))
            say(c, syscall(SYS_bpf, 0, attr, sizeof attr));
        else if (!strcmp(c, "perf_event_open"))
            say(c, syscall(SYS_perf_event_open, attr, 0, -1, -1, 0));
        else if (!strcmp(c, "socket-vsock"))
            say(c, socket(40, SOCK_STREAM, 0));
        else if (!strcmp(c, "socket-inet"))
            say(c, socket(AF_INET, SOCK_STREAM, 0));
        else if (!strcmp(c, "personality"))
            say(c, personality(0x0040000));
        else if (!strcmp(c, "mount-cgroup")) {
            mkdir("/tmp/cg", 0755);
            say(c, mount("cgroup", "/tmp/cg", "cgroup", 0, "memory"));
        } else if (!strcmp(c, "mkdir"))
            say(c, mkdir("/tmp/probe-dir", 0755));
        else if (!strcmp(c, "lift")) {
            say("lift-unshare", unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWCGROUP));
            mkdir("/tmp/memory", 0755);
            mkdir("/tmp/pids", 0755);
            say("lift-mount-memory", mount("cgroup", "/tmp/memory", "cgroup", 0, "memory"));
            say("lift-mount-pids", mount("cgroup", "/tmp/pids", "cgroup", 0, "pids"));
            say("lift-write-memory", put("/tmp/memory/memory.limit_in_bytes", "-1"));
            say("lift-write-pids", put("/tmp/pids/pids.max", "max"));
        } else {
            printf("%s unknown\n", c);
            return 2;
        }
    }
    return 0;
}
