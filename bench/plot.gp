# SPDX-License-Identifier: LGPL-2.1-or-later
# plot.gp — cold-scan wall time and peak RSS against block count, hotplugd vs lsmem.
#   gnuplot -e "datafile='bench/cold-scan.dat'; outfile='bench/cold-scan.png'" bench/plot.gp
# bench/run-all.py writes the data file (columns: blocks, median ms hotplugd, median ms lsmem,
# peak RSS MiB hotplugd, peak RSS MiB lsmem, RSS goal MiB) and runs this.
if (!exists("datafile")) datafile = 'cold-scan.dat'
if (!exists("outfile")) outfile = 'cold-scan.png'

set terminal pngcairo size 1280,560 font "DejaVu Sans,11" noenhanced
set output outfile
set multiplot layout 1,2 title "Cold scan of a generated host (128 MiB blocks in 8 nodes, on tmpfs): hotplugd --dump-model vs lsmem -o RANGE,STATE,NODE,ZONES" font ",12"

stats datafile using 1 nooutput
xmin = STATS_min / 1.4
xmax = STATS_max * 1.4
set xrange [xmin:xmax]
set logscale x 2
set format x "%.0f"
set xtics (1024, 4096, 16384, 65536, 262144)
set xlabel "memory blocks (log scale)"
set grid xtics ytics lc rgb "#dddddd"
set key top left Left reverse box opaque samplen 3
set style line 1 lc rgb "#1f77b4" lw 2 pt 7 ps 1.3
set style line 2 lc rgb "#d62728" lw 2 pt 5 ps 1.3
set style line 3 lc rgb "#2ca02c" lw 1.5 pt 9 ps 1.1 dt 3
set style line 4 lc rgb "#555555" lw 1.5 dt 2
set samples 200

set title "wall time, median of interleaved runs"
set logscale y 10
set ylabel "milliseconds (log scale)"
set ytics nomirror
set y2range [0:100]
set y2tics 10 nomirror
set y2label "hotplugd / lsmem, %"
plot datafile using 1:2 with linespoints ls 1 title "hotplugd --dump-model", \
     datafile using 1:3 with linespoints ls 2 title "lsmem", \
     datafile using 1:($2/$3*100) axes x1y2 with linespoints ls 3 title "hotplugd / lsmem (right axis)", \
     40 axes x1y2 with lines ls 4 title "goal: hotplugd ≤ 40 % of lsmem"

set title "peak RSS (wait4 ru_maxrss)"
unset logscale y
unset y2tics
unset y2label
set ytics mirror
set yrange [0:*]
set ylabel "MiB"
goal(x) = 16 + 64 * x / 1048576.0
plot datafile using 1:4 with linespoints ls 1 title "hotplugd --dump-model", \
     datafile using 1:5 with linespoints ls 2 title "lsmem", \
     goal(x) with lines ls 4 title "goal for hotplugd: 16 MiB + 64 B per block"
unset multiplot
