#!/usr/bin/env bash
# fermix train on several machines with torchrun (static rendezvous: node 0 hosts the rendezvous).
# Run this script once on every node, with the same settings except NODE_RANK:
#
#   node 0:  NNODES=2 NODE_RANK=0 NPROC_PER_NODE=4 MASTER_ADDR=node0.example MASTER_PORT=29500 \
#              scripts/torchrun_multinode.sh method=erm dataset=rafdb dataset.root=/shared/rafdb
#   node 1:  NNODES=2 NODE_RANK=1 NPROC_PER_NODE=4 MASTER_ADDR=node0.example MASTER_PORT=29500 \
#              scripts/torchrun_multinode.sh method=erm dataset=rafdb dataset.root=/shared/rafdb
#
# Arguments are fermix train overrides. Start every node from the same working directory on a shared
# file system: all ranks write into one run directory (global rank 0 names it; only rank 0 writes).
# data.batch_size is global (split over NNODES x NPROC_PER_NODE processes). docs/distributed.md
#
#   NNODES          number of machines (default 1)
#   NODE_RANK       this machine's index, 0 .. NNODES-1 (default 0)
#   NPROC_PER_NODE  processes per machine, usually its GPU count (default 1)
#   MASTER_ADDR     address of node 0, reachable from every node (default 127.0.0.1)
#   MASTER_PORT     a free TCP port on node 0 (default 29500)
#   RDZV_ID         a label for this job in torchrun's logs (default: SLURM_JOB_ID, else fermix)
#   TORCHRUN        the launcher command (default: torchrun)
set -euo pipefail

NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
NPROC_PER_NODE=${NPROC_PER_NODE:-1}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
RDZV_ID=${RDZV_ID:-${SLURM_JOB_ID:-fermix}}
TORCHRUN=${TORCHRUN:-torchrun}

if (( NODE_RANK < 0 || NODE_RANK >= NNODES )); then
    echo "torchrun_multinode.sh: NODE_RANK=$NODE_RANK must be in 0..$((NNODES - 1))" >&2
    exit 2
fi

# One process per rank and no thread oversubscription on CPU-only nodes (GPU runs are unaffected).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

# shellcheck disable=SC2086  # TORCHRUN may be a command with arguments ("python -m torch.distributed.run")
exec $TORCHRUN \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --nproc_per_node="$NPROC_PER_NODE" \
    --master_addr="$MASTER_ADDR" \
    --master_port="$MASTER_PORT" \
    --rdzv_id="$RDZV_ID" \
    -m fermix train "$@"
