namespace MegaMoe.Cli.Running;

/// <summary>Wall-clock times of repeated forward passes.</summary>
/// <param name="MedianSeconds">The median (what is reported).</param>
/// <param name="MinSeconds">The fastest run.</param>
/// <param name="MaxSeconds">The slowest run.</param>
/// <param name="Runs">Timed runs (after warm-up).</param>
internal sealed record Timing(double MedianSeconds, double MinSeconds, double MaxSeconds, int Runs)
{
    public static Timing FromSamples(List<double> seconds)
    {
        seconds.Sort();
        return new Timing(seconds[seconds.Count / 2], seconds[0], seconds[^1], seconds.Count);
    }
}
