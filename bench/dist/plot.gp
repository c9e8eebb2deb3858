# bench/dist/plot.gp: gnuplot -e "datafile='results.dat'; outfile='results.png'" plot.gp
# results.dat (dist_driver.erl): test, rate relative to erlang for erlang,
# ei, cactor, then server CPU us per request for erlang, ei, cactor.
set terminal pngcairo size 1300,800 font "DejaVu Sans,10"
set output outfile
set multiplot layout 2,1 title "bench/dist: cactor-node vs Erlang echo node vs blocking ei C node (medians)"

set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top left
set xtics rotate by 20 right scale 0 font ",9"
set logscale y 2
set ylabel "throughput / Erlang node's (log)"
set yrange [0.0625:*]
plot datafile using 2:xtic(1) title "Erlang echo node" lc rgb "#c44e52", \
     '' using 3 title "blocking ei C node" lc rgb "#8c8c8c", \
     '' using 4 title "cactor-node" lc rgb "#4c72b0", \
     1 notitle lc rgb "black" dt 2

set logscale y 10
set ylabel "server CPU us per request (log)"
set yrange [*:*]
plot datafile using 5:xtic(1) title "Erlang echo node" lc rgb "#c44e52", \
     '' using 6 title "blocking ei C node" lc rgb "#8c8c8c", \
     '' using 7 title "cactor-node" lc rgb "#4c72b0"
unset multiplot
