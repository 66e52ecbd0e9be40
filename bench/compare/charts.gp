# bench/compare/charts.gp - the charts of bench_compare's .dat files.
#   gnuplot -e "indir='DIR'; outdir='DIR'" bench/compare/charts.gp
# One clustered bar chart per file: a cluster per workload, a bar per back end.
set terminal pngcairo size 860,400 font "DejaVu Sans,9" noenhanced
set datafile separator "\t"
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border rgb "#404040"
set boxwidth 0.9
set key outside right top vertical
set grid ytics lc rgb "#d0d0d0"
set xtics nomirror scale 0
set ytics nomirror
set border 3
# klog first, in a colour of its own; the raw floor grey
set linetype 1 lc rgb "#d62728"
set linetype 2 lc rgb "#7f7f7f"
set linetype 3 lc rgb "#1f77b4"
set linetype 4 lc rgb "#2ca02c"
set linetype 5 lc rgb "#9467bd"
set linetype 6 lc rgb "#ff7f0e"
set linetype 7 lc rgb "#17becf"
set linetype 8 lc rgb "#8c564b"
set linetype 9 lc rgb "#e377c2"
set linetype 10 lc rgb "#bcbd22"
set linetype 11 lc rgb "#393b79"

ncols(f) = system("head -1 '".f."' | awk -F'\t' '{print NF}'") + 0
have(f) = system("test -s '".f."' && echo 1 || echo 0") + 0

f = indir.'/throughput.dat'
if (have(f)) {
    set output outdir.'/compare-throughput.png'
    set title "Throughput, million records/s (log scale; higher is better)"
    set logscale y
    set ylabel "M records/s"
    plot for [i=2:ncols(f)] f using i:xtic(1) title columnheader(i)
}

f = indir.'/durable.dat'
if (have(f)) {
    set output outdir.'/compare-durable.png'
    set logscale y
    set title "Durable produce (acknowledged once on disk; nats: before fsync, 2.9 cannot sync), records/s (log; higher is better)"
    set ylabel "records/s"
    plot for [i=2:ncols(f)] f using i:xtic(1) title columnheader(i)
}

f = indir.'/latency.dat'
if (have(f)) {
    set output outdir.'/compare-latency.png'
    set logscale y
    set title "End-to-end latency at 10,000 records/s, microseconds (log scale; lower is better)"
    set ylabel "us"
    plot for [i=2:ncols(f)] f using i:xtic(1) title columnheader(i)
}

f = indir.'/compression.dat'
if (have(f)) {
    set output outdir.'/compare-compression.png'
    set title "Telemetry JSON: stored bytes / raw bytes (lower is better; only klog and RocksDB compress)"
    unset logscale y
    set yrange [0:*]
    set ylabel "stored / raw"
    plot for [i=2:ncols(f)] f using i:xtic(1) title columnheader(i)
}
