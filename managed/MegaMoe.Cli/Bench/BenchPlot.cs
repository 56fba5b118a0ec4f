using ScottPlot;

namespace MegaMoe.Cli.Bench;

/// <summary>
/// The PNG of <c>megamoe bench --plot</c>: a log-log roofline, achieved TFLOPS against arithmetic intensity (flops per
/// byte of minimum traffic), one line per model and backend through its token counts. When the device's peaks are known
/// (given, or an H100/H200) the roof min(peak, bandwidth · intensity) is drawn, so distance to the roof reads directly.
/// </summary>
internal static class BenchPlot
{
    /// <summary>Writes <see cref="Build"/>'s plot as a 1000 x 640 PNG.</summary>
    public static void Write(string path, BenchDocument document, (double Tflops, double Gbps)? peak) =>
        Build(document, peak).SavePng(path, 1000, 640);

    /// <summary>The plot <see cref="Write"/> renders: title, axis labels with their units, a legend entry per line.</summary>
    public static Plot Build(BenchDocument document, (double Tflops, double Gbps)? peak)
    {
        var plot = new Plot();
        plot.Title($"MegaMoe MoE layer roofline - {document.Card}");
        plot.XLabel("arithmetic intensity (FLOP/byte, log scale)");
        plot.YLabel("achieved throughput (TFLOPS, log scale)");

        foreach (var series in document.Results.GroupBy(r => (Model: r.Name[..r.Name.LastIndexOf("_t", StringComparison.Ordinal)], r.Backend)))
        {
            BenchResult[] points = series.OrderBy(r => r.Tokens).ToArray();
            double[] xs = points.Select(p => Math.Log10(Math.Max(p.ArithmeticIntensity, 1e-3))).ToArray();
            double[] ys = points.Select(p => Math.Log10(Math.Max(p.Tflops, 1e-6))).ToArray();
            var scatter = plot.Add.Scatter(xs, ys);
            scatter.LegendText = $"{series.Key.Model["moe/".Length..]} ({series.Key.Backend})";
            scatter.MarkerSize = 7;
            for (int i = 0; i < points.Length; i++)
            {
                var label = plot.Add.Text($"T={points[i].Tokens}", xs[i], ys[i]);
                label.LabelFontSize = 10;
                label.OffsetX = 4;
            }
        }

        if (peak is { } p && document.Results.Count > 0)
        {
            double lo = Math.Log10(Math.Max(document.Results.Min(r => r.ArithmeticIntensity) / 2, 1e-3));
            double hi = Math.Log10(Math.Max(document.Results.Max(r => r.ArithmeticIntensity) * 4, (p.Tflops * 1e12 / (p.Gbps * 1e9)) * 2));
            double[] xs = Enumerable.Range(0, 64).Select(i => lo + ((hi - lo) * i / 63)).ToArray();
            double[] ys = xs.Select(x => Math.Log10(Math.Min(p.Tflops, p.Gbps * 1e9 * Math.Pow(10, x) / 1e12))).ToArray();
            var roof = plot.Add.Scatter(xs, ys);
            roof.LegendText = $"roof: {p.Tflops:G4} TFLOPS, {p.Gbps:G4} GB/s";
            roof.MarkerSize = 0;
            roof.LinePattern = LinePattern.Dashed;
            roof.Color = Colors.Gray;
        }

        // Log axes in ScottPlot 5: the data are plotted as log10, and the ticks at 1, 2 and 5 times the powers of ten
        // inside the axis range are labelled with their values (a sweep often spans less than one decade).
        plot.Axes.AutoScale();
        AxisLimits limits = plot.Axes.GetLimits();
        plot.Axes.Bottom.TickGenerator = LogTicks(limits.Left, limits.Right);
        plot.Axes.Left.TickGenerator = LogTicks(limits.Bottom, limits.Top);
        plot.ShowLegend(Alignment.UpperLeft);
        return plot;
    }

    /// <summary>Dense FP8 tensor-core peak and HBM bandwidth of the SXM parts, by device name; null when unknown.</summary>
    public static (double Tflops, double Gbps)? KnownPeak(string card) =>
        card.Contains("H200", StringComparison.OrdinalIgnoreCase) ? (1979, 4800)
        : card.Contains("H100", StringComparison.OrdinalIgnoreCase) ? (1979, 3350)
        : null;

    private static ScottPlot.TickGenerators.NumericManual LogTicks(double min, double max)
    {
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        for (int decade = (int)Math.Floor(min); decade <= (int)Math.Ceiling(max); decade++)
        {
            foreach (double mantissa in new[] { 1.0, 2.0, 5.0 })
            {
                double position = decade + Math.Log10(mantissa);
                if (position >= min && position <= max)
                {
                    ticks.AddMajor(position, (mantissa * Math.Pow(10, decade)).ToString("G6", System.Globalization.CultureInfo.InvariantCulture));
                }
            }
        }

        return ticks;
    }
}
