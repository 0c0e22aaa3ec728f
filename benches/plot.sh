#!/usr/bin/env bash
# qps against sysbench threads, one line per target (direct, haproxy, proxy,
# ...), from a benches/sysbench.sh results.tsv: mean over rounds, as an SVG
# drawn with awk alone (no plotting package needed).
# Usage: [PLOT_LABELS="proxy=text;proxy2=text"] benches/plot.sh RESULTS.tsv WORKLOAD OUT.svg [TITLE]
set -euo pipefail
[[ $# -ge 3 ]] || { echo "usage: $0 RESULTS.tsv WORKLOAD OUT.svg [TITLE]" >&2; exit 2; }
RES="$1" WORKLOAD="$2" OUT="$3" TITLE="${4:-$2: qps against sysbench threads}"
[[ -r "$RES" ]] || { echo "$RES: not readable" >&2; exit 1; }

awk -F'\t' -v wl="$WORKLOAD" -v title="$TITLE" -v labels="${PLOT_LABELS:-}" '
  NR == 1 { next }
  $2 == wl && $5 == "ok" {
    k = $4 SUBSEP $3; sum[k] += $7; n[k]++
    if (!($4 in seen_t)) { seen_t[$4] = 1; tg[++nt] = $4 }
    if (!($3 in seen_x)) { seen_x[$3] = 1; xs[++nx] = $3 + 0 }
  }
  END {
    if (nt == 0) { print "no ok runs of " wl > "/dev/stderr"; exit 1 }
    # sort thread counts ascending
    for (i = 1; i <= nx; i++) for (j = i + 1; j <= nx; j++) if (xs[j] < xs[i]) { t = xs[i]; xs[i] = xs[j]; xs[j] = t }
    ymax = 0
    for (k in sum) { v = sum[k] / n[k]; if (v > ymax) ymax = v }
    step = 10 ^ int(log(ymax) / log(10)); ytop = step * (int(ymax / step) + 1)
    W = 820; H = 440; L = 80; R = 250; T = 50; B = 60; pw = W - L - R; ph = H - T - B
    nl = split(labels, lp, ";"); for (i = 1; i <= nl; i++) { eq = index(lp[i], "="); if (eq) label[substr(lp[i], 1, eq - 1)] = substr(lp[i], eq + 1) }
    color["direct"] = "#1f77b4"; color["haproxy"] = "#d62728"; color["proxy"] = "#2ca02c"; color["proxy2"] = "#9467bd"
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"%d\" y=\"25\" font-size=\"15\">%s</text>\n", L, title
    for (i = 0; i <= 5; i++) {
      y = T + ph - ph * i / 5; v = ytop * i / 5
      printf "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, y, L + pw, y
      printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%d</text>\n", L - 6, y + 4, v
    }
    for (i = 1; i <= nx; i++) {
      x = L + (nx == 1 ? pw / 2 : pw * (i - 1) / (nx - 1))
      px[i] = x
      printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", x, T + ph + 18, xs[i]
    }
    printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">sysbench threads</text>\n", L + pw / 2, H - 15
    printf "<text x=\"18\" y=\"%d\" transform=\"rotate(-90 18 %d)\" text-anchor=\"middle\">queries per second</text>\n", T + ph / 2, T + ph / 2
    printf "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n", L, T, pw, ph
    for (j = 1; j <= nt; j++) {
      c = (tg[j] in color) ? color[tg[j]] : "#555"; pts = ""
      for (i = 1; i <= nx; i++) {
        k = tg[j] SUBSEP xs[i]; if (!(k in n)) continue
        y = T + ph - ph * (sum[k] / n[k]) / ytop
        pts = pts sprintf("%.1f,%.1f ", px[i], y)
        printf "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"><title>%s %d threads: %d qps</title></circle>\n", px[i], y, c, tg[j], xs[i], sum[k] / n[k]
      }
      printf "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"/>\n", pts, c
      ly = T + 10 + 20 * j
      printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>\n", L + pw + 15, ly, L + pw + 40, ly, c
      printf "<text x=\"%d\" y=\"%d\">%s</text>\n", L + pw + 46, ly + 4, (tg[j] in label) ? label[tg[j]] : tg[j]
    }
    print "</svg>"
  }' "$RES" >"$OUT"
echo "wrote $OUT" >&2
