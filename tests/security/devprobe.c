/*
 * devprobe: make and use device nodes, and say what the kernel answered.
 *
 * usage: devprobe STEP...   Each STEP prints one line, "STEP ok" or "STEP ERRNO-NAME" (EPERM, ENXIO, ...).
 * Built static by the tests (gcc -static) and mounted into a busybox container.
 *
 *   mknod:PATH:c|b:MAJOR:MINOR   mknod(2) of a character or block device node, mode 0600
 *   write:PATH:TEXT              open(2) PATH for writing and write TEXT and a newline
 *   open:PATH                    open(2) PATH for reading, and close it
 *   read:PATH:N                  open(2) PATH for reading and read N bytes ("short" if fewer came)
 *   full                         write one byte to /dev/full: ENOSPC is what the device answers
 *   tty                          open(2) /dev/tty: ENXIO without a controlling terminal
 *   pty                          open /dev/ptmx, unlock it, open its /dev/pts/N, and pass a line from
 *                                the terminal to the master ("short" if it did not arrive)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void say(const char *step, int err)
{
    if (!err)
        printf("%s ok\n", step);
    else if (err == -1)
        printf("%s short\n", step);
    else
        printf("%s %s\n", step, strerrorname_np(err) ? strerrorname_np(err) : "E?");
}

static int do_mknod(char *spec)
{
    char *path = strtok(spec, ":"), *kind = strtok(NULL, ":"), *major = strtok(NULL, ":"), *minor = strtok(NULL, ":");
    if (!path || !kind || !major || !minor)
        return EINVAL;
    mode_t type = kind[0] == 'b' ? S_IFBLK : S_IFCHR;
    return mknod(path, type | 0600, makedev(atoi(major), atoi(minor))) ? errno : 0;
}

static int do_write(char *spec)
{
    char *path = strtok(spec, ":"), *text = strtok(NULL, "");
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    char line[512];
    int n = snprintf(line, sizeof line, "%s\n", text ? text : "");
    int err = write(fd, line, n) == n ? 0 : errno;
    close(fd);
    return err;
}

static int do_read(char *spec)
{
    char *path = strtok(spec, ":"), *count = strtok(NULL, ":");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    char buf[4096];
    int want = count ? atoi(count) : 1;
    ssize_t got = read(fd, buf, want > (int)sizeof buf ? (int)sizeof buf : want);
    int err = got < 0 ? errno : got == want ? 0 : -1;
    close(fd);
    return err;
}

static int do_open(char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    close(fd);
    return 0;
}

static int do_full(void)
{
    int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int err = write(fd, "x", 1) == 1 ? 0 : errno;
    close(fd);
    return err;
}

static int do_tty(void)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return errno;
    close(fd);
    return 0;
}

static int do_pty(void)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        return errno;
    char *name = (grantpt(master) || unlockpt(master)) ? NULL : ptsname(master);
    if (!name) {
        int err = errno;
        close(master);
        return err;
    }
    int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) {
        int err = errno;
        close(master);
        return err;
    }
    char buf[64] = {0};
    int err = write(slave, "hello\n", 6) == 6 ? 0 : errno;
    if (!err) {
        ssize_t got = read(master, buf, sizeof buf - 1);
        err = got > 0 && strstr(buf, "hello") ? 0 : -1;
    }
    close(slave);
    close(master);
    return err;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        char step[512], spec[512];
        snprintf(step, sizeof step, "%s", argv[i]);
        char *colon = strchr(argv[i], ':');
        snprintf(spec, sizeof spec, "%s", colon ? colon + 1 : "");
        int err;
        if (!strncmp(step, "mknod:", 6))
            err = do_mknod(spec);
        else if (!strncmp(step, "write:", 6))
            err = do_write(spec);
        else if (!strncmp(step, "read:", 5))
            err = do_read(spec);
        else if (!strncmp(step, "open:", 5))
            err = do_open(spec);
        else if (!strcmp(step, "full"))
            err = do_full();
        else if (!strcmp(step, "tty"))
            err = do_tty();
        else if (!strcmp(step, "pty"))
            err = do_pty();
        else
            err = EINVAL;
        say(step, err);
    }
    return 0;
}
