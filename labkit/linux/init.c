/*
 * labkit-init: the tiny init that `run --init` puts in front of a container's command.
 *
 * A process that is PID 1 of a PID namespace gets no default signal actions:
 * the kernel drops any signal it has no handler for (pid_namespaces(7)), so a
 * plain `sleep` as PID 1 ignores `stop`'s SIGTERM. It is also the parent of
 * every orphan in the namespace, and must reap them or they stay zombies.
 * This init is PID 1 instead: it forks the command, forwards the signals a
 * user sends to it, reaps every child, and exits the way the command exited.
 * Statically linked, because an image need not contain a C library.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static const int forwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT};

int main(int argc, char **argv) {
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "--") == 0)
        first = 2;
    if (first >= argc) {
        fprintf(stderr, "usage: labkit-init [--] COMMAND [ARG...]\n");
        return 2;
    }
    /* labkit starts this init with every signal blocked (so none sent before this
     * point is lost: the kernel drops an unhandled signal to a namespace's init
     * unless it is blocked); the command gets an empty mask, as any program expects. */
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    sigprocmask(SIG_BLOCK, &all, NULL);
    pid_t child = fork();
    if (child < 0) {
        perror("labkit-init: fork");
        return 1;
    }
    if (child == 0) {
        setpgid(0, 0);
        /* With a terminal (-t), the command's group must be its foreground group, or its first
         * read of the terminal stops it (SIGTTIN, termios(3)); SIGTTOU is still blocked here,
         * so tcsetpgrp(3) from this background group is allowed. */
        if (isatty(0))
            tcsetpgrp(0, getpid());
        sigprocmask(SIG_SETMASK, &none, NULL);
        execvp(argv[first], argv + first);
        fprintf(stderr, "labkit-init: exec %s: %s\n", argv[first], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGCHLD);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaddset(&wanted, forwarded[i]);
    for (;;) {
        int sig = 0;
        if (sigwait(&wanted, &sig) != 0)
            continue;
        if (sig != SIGCHLD) {
            kill(child, sig);
            continue;
        }
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid != child)
                continue; /* an orphan reaped */
            if (WIFEXITED(status))
                return WEXITSTATUS(status);
            return 128 + WTERMSIG(status);
        }
    }
}
