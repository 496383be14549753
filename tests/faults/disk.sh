#!/usr/bin/env bash
# A full disk and a read-only run directory, for real: a tiny tmpfs and a
# read-only bind mount (tests run as root, where file permissions do not stop writes). Under
# mpirun -np 2:
#   - full tmpfs: the checkpoint write fails -> a clear message, exit 7, the previous checkpoint
#     intact (sha256 unchanged), no temporary file; with space again --resume auto continues
#     from it, bit for bit like an uninterrupted run;
#   - run directory read-only from the start (bind mount, remount ro): exit 7 naming the file,
#     previous checkpoint intact;
#   - run directory made read-only while training (a read-only bind mount on top of it): the
#     next checkpoint write fails, exit 7, the checkpoints written before intact; --resume auto
#     continues from them once writable again.
# Every mount is undone in the EXIT trap. Without root or mount(8) the test says so and skips.
#   disk.sh BEIT SRCDIR
BEIT=$1
SRC=$2
. "$SRC/tests/tap.sh"
. "$SRC/tests/faults/lib.sh"
MOUNTS=()
cleanup() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" 2>/dev/null ||
            echo "# could not unmount ${MOUNTS[$i]}"
    done
    rm -rf "$T"
}
trap cleanup EXIT
write_jobs "$T"
sha() { sha256sum "$1" | cut -d' ' -f1; }

mkdir -p "$T/probe"
if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=64k tmpfs "$T/probe" 2>"$T/err"; then
    echo "1..0 # SKIP cannot mount a tmpfs here (needs root and mount(8)): $(head -c 200 "$T/err")"
    exit 0
fi
umount "$T/probe"

run $MPI -np 2 $BEIT pretrain -c "$T/small.yaml" --out "$T/ref" --steps 10 --set train.ckpt_every=5
check "reference: 10 steps on 2 ranks, uninterrupted" bash -c "[ $rc = 0 ] && [ -f '$T/ref/ckpt-00000010.h5' ]"

# ---- full disk ----
F="$T/full"
mkdir -p "$F"
mount -t tmpfs -o size=1m tmpfs "$F" && MOUNTS+=("$F")
check "a 1 MiB tmpfs at $F" mountpoint -q "$F"
run $MPI -np 2 $BEIT pretrain -c "$T/small.yaml" --out "$F/run" --steps 5 --set train.ckpt_every=5
check "5 steps into the tmpfs: ckpt-5 written ($(stat -c %s "$F/run/ckpt-00000005.h5" 2>/dev/null) bytes)" \
    bash -c "[ $rc = 0 ] && ckpts_complete '$F/run'"
before=$(sha "$F/run/ckpt-00000005.h5")
# fill it, then free 48 KiB: room for config.yaml and the metrics, not for a ~200 KB checkpoint
dd if=/dev/zero of="$F/filler" bs=4k 2>/dev/null
truncate -s -48k "$F/filler"
echo "# tmpfs free after filling: $(df -k --output=avail "$F" | tail -n 1 | tr -d ' ') KiB"
run $MPI -np 2 $BEIT pretrain -c "$T/small.yaml" --out "$F/run" --steps 10 --resume auto --set train.ckpt_every=5
grep '^beit' "$T/err" | sed 's/^/# /'
check "full disk: exit 7 (BEIT_EXIT_IO)" [ "$rc" = 7 ]
check "the message names the checkpoint, the error and what is kept: 'cannot write checkpoint .../ckpt-00000010.h5 (... No space left on device ...); the previous checkpoint is kept'" \
    bash -c "grep -q 'cannot write checkpoint $F/run/ckpt-00000010.h5 (rank [0-9]: .*No space left on device.*); the previous checkpoint is kept' '$T/err'"
check "the previous checkpoint is intact (sha256 unchanged, complete), no ckpt-10, no temporary file" \
    bash -c "[ \"\$(sha256sum '$F/run/ckpt-00000005.h5' | cut -d' ' -f1)\" = '$before' ] && ckpts_complete '$F/run' &&
             [ ! -e '$F/run/ckpt-00000010.h5' ] && no_tmp '$F/run'"
rm -f "$F/filler"
run $MPI -np 2 $BEIT pretrain -c "$T/small.yaml" --out "$F/run" --steps 10 --resume auto --set train.ckpt_every=5
check "space again: --resume auto continues from ckpt-5 and writes ckpt-10" \
    bash -c "[ $rc = 0 ] && grep -q 'resumed from $F/run/ckpt-00000005.h5 at step 5' '$T/out' && [ -f '$F/run/ckpt-00000010.h5' ]"
check "... and equals the uninterrupted run bit for bit" same_run "$T/ref" "$F/run"

# ---- read-only run directory (bind mount) ----
R="$T/ro"
mkdir -p "$R/src" "$R/run"
$MPI -np 2 $BEIT pretrain -c "$T/small.yaml" --out "$R/src" --steps 5 --set train.ckpt_every=5 >/dev/null 2>&1
mount --bind "$R/src" "$R/run" && MOUNTS+=("$R/run") && mount -o remount,ro,bind "$R/run"
touch "$R/run/probe" 2>/dev/null && rm -f "$R/run/probe"
check "$R/run: a read-only bind mount of a run directory (touch fails)" \
    bash -c "[ -f '$R/run/ckpt-00000005.h5' ] && ! touch '$R/run/probe' 2>/dev/null"
before=$(sha "$R/run/ckpt-00000005.h5")
run $MPI -np 2 $BEIT pretrain -c "$T/small.yaml" --out "$R/run" --steps 10 --resume auto --set train.ckpt_every=5
check "read-only run directory: exit 7, the message names the file and 'Read-only file system'" \
    bash -c "[ $rc = 7 ] && grep -q 'cannot write $R/run/.*Read-only file system' '$T/err'"
check "the previous checkpoint is intact (sha256 unchanged)" [ "$(sha "$R/run/ckpt-00000005.h5")" = "$before" ]
umount "$R/run" && unset 'MOUNTS[-1]'
check "unmounted again (no mount left at $R/run)" bash -c "! mountpoint -q '$R/run'"

# ---- read-only while training: a read-only bind mount over the run directory ----
# (remounting the run directory's own mount read-only is refused while the run holds
# metrics.jsonl open for writing -- EBUSY --, so a read-only bind mount of the directory onto
# itself is put on top: the open file stays writable, every new file in the directory fails)
W="$T/rw"
mkdir -p "$W"
timeout 120 $MPI -np 2 $BEIT pretrain -c "$T/small.yaml" --out "$W" --set train.ckpt_every=20 >"$T/c.out" 2>"$T/c.err" &
mp=$!
wait_lines "$W/metrics.jsonl" 30 120 # checkpoint 20 written
# Both ranks are paused around the mount: a file the run opens on the new bind mount before
# it is remounted read-only (a checkpoint being started) makes the remount fail with EBUSY,
# and the run would go on writing (a step takes milliseconds here). Files opened before the
# bind stay on the old, writable mount.
r0=$(rank_pid $mp 0)
r1=$(rank_pid $mp 1)
kill -STOP $r0 $r1
mount --bind "$W" "$W" && MOUNTS+=("$W") && mount -o remount,ro,bind "$W"
ro=0
touch "$W/probe" 2>/dev/null && rm -f "$W/probe" || ro=1
at=$(wc -l <"$W/metrics.jsonl")
declare -A sums
for f in "$W"/ckpt-*.h5; do sums[$f]=$(sha "$f"); done
kill -CONT $r0 $r1
check "$W: a read-only bind mount over the run directory while the ranks were paused (touch fails)" [ $ro = 1 ]
wait $mp
rc=$?
echo "# made read-only after step $at; checkpoints then: ${!sums[*]}"
grep '^beit' "$T/c.err" | sed 's/^/# /'
# (MPI-IO leaves a stale errno when the create fails; the writer asks the file system again)
check "read-only during training: exit 7, 'cannot write checkpoint .../ckpt-N.h5 (rank R: ...Read-only file system); the previous checkpoint is kept'" \
    bash -c "[ $rc = 7 ] && grep -q 'cannot write checkpoint $W/ckpt-[0-9]*.h5 (rank [0-9]: .*Read-only file system.*); the previous checkpoint is kept' '$T/c.err'"
ok=1
for f in "${!sums[@]}"; do [ "$(sha "$f")" = "${sums[$f]}" ] || ok=0; done
check "the checkpoints written before are intact (sha256 unchanged) and complete" \
    bash -c "[ $ok = 1 ] && [ ${#sums[@]} -ge 1 ] && ckpts_complete '$W'"
umount "$W" && unset 'MOUNTS[-1]'
last=$(ls "$W" | grep '^ckpt-' | sort | tail -n 1)
at=$(echo "$last" | sed -n 's/^ckpt-0*\([0-9][0-9]*\)\.h5$/\1/p')
run $MPI -np 2 $BEIT pretrain -c "$T/small.yaml" --out "$W" --resume auto --steps $((${at:-0} + 2))
check "writable again: --resume auto continues from the newest of them ($last) for 2 steps" \
    bash -c "[ $rc = 0 ] && [ -n '$last' ] && grep -q 'resumed from $W/$last at step' '$T/out' &&
             tail -n 1 '$W/metrics.jsonl' | grep -q '\"step\": $((${at:-0} + 2)),'"
finish
