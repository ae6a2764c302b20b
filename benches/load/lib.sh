# Shared by the load scripts (sourced, not run).

# Writes $1/knot/knot.conf: Knot serving bench.example from $1/bench.example.zone on
# 127.0.0.1 port $2, with one UDP, one TCP and one background worker (the same share of the
# machine every server gets), no journal, errors only in the log.
write_knot_conf() { # work-dir port
    mkdir -p "$1/knot"
    cat > "$1/knot/knot.conf" <<CONF
server:
    listen: 127.0.0.1@$2
    rundir: "$1/knot"
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$1/knot"
log:
  - target: stderr
    any: error
zone:
  - domain: bench.example
    file: "$1/bench.example.zone"
    journal-content: none
    zonefile-load: whole
CONF
}
