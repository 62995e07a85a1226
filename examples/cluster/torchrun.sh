#!/usr/bin/env bash
# Two nodes x GPUS processes with torchrun: run this once on every node, with its NODE_RANK.
#
#   NODE_RANK=0 MASTER_ADDR=node0.example.com GPUS=4 bash examples/cluster/torchrun.sh   # node 0
#   NODE_RANK=1 MASTER_ADDR=node0.example.com GPUS=4 bash examples/cluster/torchrun.sh   # node 1
#
# Needs on every node: the same code and Python environment, MASTER_ADDR reachable on
# MASTER_PORT (TCP) from every node, DATA readable (a shared folder or an fsspec URL such as
# s3://bucket/digits, with its credentials) and ROOT on a filesystem every node shares (resume
# reads it). NCCL picks the network interface itself; set NCCL_SOCKET_IFNAME (and GLOO_SOCKET_IFNAME
# for CPU runs) if it picks the wrong one. Extra arguments go to train.py (e.g. --resume).
set -euo pipefail
: "${NODE_RANK:?set NODE_RANK: 0 on the first node, 1 on the second}"
: "${MASTER_ADDR:?set MASTER_ADDR: the address of node 0, reachable from every node}"
MASTER_PORT="${MASTER_PORT:-29500}"
NNODES="${NNODES:-2}"
GPUS="${GPUS:-4}"
DATA="${DATA:-/shared/data/digits}"
ROOT="${ROOT:-/shared/runs/cluster}"

exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="$NNODES" --nproc-per-node="$GPUS" --node-rank="$NODE_RANK" \
    --master-addr="$MASTER_ADDR" --master-port="$MASTER_PORT" \
    "$(dirname "$0")/train.py" --data "$DATA" --root "$ROOT" \
    --num-nodes "$NNODES" --devices "$GPUS" "$@"
