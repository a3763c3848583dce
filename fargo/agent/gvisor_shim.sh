# conmon's runtime for a container that joins its task's gVisor sandbox (agent/gvisor.py).
# conmon runs: sh gvisor_shim.sh RUNSC GLOBAL-FLAGS... create --bundle B --pid-file P CID
#
# A subcontainer's stdio are those of its `runsc start` call, not of its create, so conmon's
# pipes must reach the start. This creates the container, then leaves a proxy (the pid conmon
# watches, in conmon's pipes) that waits for fargo's go-ahead on B/start.fifo, runs the start
# with the pipes as stdio, answers "0" (started) or "1" on the fifo, then waits for the
# container and exits with its code, which conmon records as it records runc's.
set -u
runsc=$1; shift
globals=""
while [ $# -gt 0 ] && [ "$1" != create ]; do globals="$globals $1"; shift; done
[ $# -gt 0 ] || exit 2
shift
bundle="" pidfile="" cid=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) bundle=$2; shift 2 ;;
    --pid-file) pidfile=$2; shift 2 ;;
    --*) shift ;;
    *) cid=$1; shift ;;
  esac
done
[ -n "$bundle" ] && [ -n "$pidfile" ] && [ -n "$cid" ] || exit 2
# shellcheck disable=SC2086 # the global flags are words of their own
"$runsc" $globals create --bundle "$bundle" "$cid" </dev/null >/dev/null || exit 1
rm -f "$bundle/start.fifo"
mkfifo -m 600 "$bundle/start.fifo" || exit 1
(
  exec 3>"$bundle/start.fifo" || exit 255  # opens once fargo reads: the go-ahead
  rm -f "$bundle/start.fifo"
  # shellcheck disable=SC2086
  if ! "$runsc" $globals --log="$bundle/start.log" start "$cid" </dev/null; then
    printf 1 >&3
    exit 255
  fi
  printf 0 >&3
  exec 3>&- </dev/null
  # shellcheck disable=SC2086
  status=$("$runsc" $globals wait "$cid" 2>/dev/null) || exit 137  # the sandbox is gone
  status=${status##*\"exitStatus\":}
  status=${status%%[!0-9]*}
  exit "${status:-255}"
) &
echo $! >"$pidfile"
