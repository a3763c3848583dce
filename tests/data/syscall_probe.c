#define _GNU_SOURCE
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <sched.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>
/* For the seccomp tests: try each syscall named on the command line and print name=0 or
   name=<errno name>. Put ptrace last: a traced process stops at its next signal. */
static int child(void *arg) { (void)arg; return 0; }
static char stack[65536];
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        long r = -1;
        if (!strcmp(argv[i], "ptrace")) r = ptrace(PTRACE_TRACEME, 0, 0, 0);
        else if (!strcmp(argv[i], "unshare")) r = unshare(CLONE_NEWUSER);
        else if (!strcmp(argv[i], "clone_newns")) r = clone(child, stack + sizeof stack, CLONE_NEWNS | SIGCHLD, 0);
        else if (!strcmp(argv[i], "clone")) r = clone(child, stack + sizeof stack, SIGCHLD, 0);
        else if (!strcmp(argv[i], "bpf")) r = syscall(SYS_bpf, 0, 0, 0);
        else if (!strcmp(argv[i], "keyctl")) r = syscall(SYS_keyctl, 0, 0, 0);
        else if (!strcmp(argv[i], "userfaultfd")) r = syscall(SYS_userfaultfd, 0);
        else if (!strcmp(argv[i], "perf_event_open")) r = syscall(SYS_perf_event_open, 0, 0, -1, -1, 0);
        else if (!strcmp(argv[i], "clone3")) r = syscall(SYS_clone3, 0, 0);
        printf("%s=%s\n", argv[i], r >= 0 ? "0" : strerrorname_np(errno));
    }
    return 0;
}
