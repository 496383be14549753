#!/bin/bash
# Two network "hosts" on this machine (tools/twohosts: two network namespaces joined by a veth
# pair, Open MPI over TCP between them, launched through an rsh agent that enters each
# namespace): a short pre-training run of the fmnist model across the two hosts gives the same
# losses, bit for bit, as the same run on one host with 2 ranks (shared memory), also with
# ZeRO-1 and with the link shaped to 1 Gbit/s by tc tbf; its gradient messages cross the link.
# Skipped (plan 1..0 # SKIP) only where network namespaces cannot be created (not root, no
# CAP_NET_ADMIN). The namespaces are deleted on every exit path.
#   two_hosts.sh BEIT
BEIT=$1
SRC=$(cd "$(dirname "$0")/../.." && pwd)
TH="$SRC/tools/twohosts"
source "$(dirname "$0")/../tap.sh"
NAME=bt$(($$ % 1000000))
cleanup() { "$TH" down "$NAME" >/dev/null 2>&1; rm -rf "$T"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

if ! "$TH" up "$NAME" >"$T/up.log" 2>&1; then
    echo "1..0 # SKIP network namespaces cannot be created here: $(head -c 200 "$T/up.log" | tr '\n' ' ')"
    exit 0
fi

JOB=(-c "$SRC/jobs/fmnist/pretrain.yaml" --set data=synthetic --set data.tokens= --set data.synthetic_size=256
     --set train.global_batch=8 --set train.log_every=1 --set train.ckpt_every=0
     --set model.depth=2 --set model.embed_dim=64 --set model.num_heads=2 --steps 3)
losses() { /usr/bin/python3 -c 'import json,sys; print(" ".join(repr(json.loads(l)["loss"]) for l in open(sys.argv[1])))' "$1"; }
# the losses as logged, and the final checkpoint's parameter checksum (every bit of every weight)
csum() { grep -o 'params checksum [0-9a-f]*' "$T/$1.log" | head -1; }
same_losses() {
    [ -s "$T/$1/metrics.jsonl" ] && [ "$(losses "$T/$1/metrics.jsonl")" = "$(losses "$T/$2/metrics.jsonl")" ] &&
        [ -n "$(csum "$1")" ] && [ "$(csum "$1")" = "$(csum "$2")" ]
}
keep() { cat "$T/out" "$T/err" >"$T/$1.log"; }

run $MPI -np 2 --bind-to none "$BEIT" pretrain "${JOB[@]}" --out "$T/shm"
keep shm
check "2 ranks on one host (shared memory) exit 0" [ "$rc" = 0 ]
run $MPI -np 2 --bind-to none "$BEIT" pretrain "${JOB[@]}" --out "$T/shmz" --set dist.zero=1
keep shmz
check "2 ranks on one host with ZeRO-1 exit 0" [ "$rc" = 0 ]

b0=$("$TH" bytes "$NAME")
run timeout 120 "$TH" mpirun "$NAME" -np 2 "$BEIT" pretrain "${JOB[@]}" --out "$T/two"
keep two
check "2 ranks on two hosts (TCP over the veth link) exit 0" [ "$rc" = 0 ]
check "two hosts: losses and final weights (checksum) equal the one-host run bit for bit" same_losses two shm
b1=$("$TH" bytes "$NAME")
# 3 steps x (gradients of every parameter / 2): the messages went over the link, not around it
params=$(grep -o '[0-9]* parameters' "$T/two.log" | head -1 | cut -d' ' -f1)
check "two hosts: host b received at least the 3 steps' gradient messages ($((b1 - b0)) bytes, $params parameters)" \
    [ -n "$params" ] && [ $((b1 - b0)) -ge $((3 * params * 2)) ]
check "two hosts: the log names 2 ranks" grep -q "on 2 ranks" "$T/two.log"

"$TH" rate "$NAME" 1gbit
run timeout 120 "$TH" mpirun "$NAME" -np 2 "$BEIT" pretrain "${JOB[@]}" --out "$T/twoz" --set dist.zero=1
keep twoz
check "two hosts, link shaped to 1 Gbit/s, ZeRO-1: exit 0" [ "$rc" = 0 ]
check "two hosts, 1 Gbit/s, ZeRO-1: losses and final weights equal the one-host ZeRO-1 run bit for bit" same_losses twoz shmz
check "ZeRO-1 and replicated AdamW: the same losses and weights" same_losses shmz shm
finish
