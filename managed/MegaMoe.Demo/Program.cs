using MegaMoe;
using MegaMoe.Demo;

// Builds a DeepSeek-V3-shaped FP8 MoE layer from deterministic random weights, runs it on the best (or the chosen)
// backend, and checks the output against the same math in float64 (docs/NUMERICS.md's bound for the layer).
// Exit code 0 only when the error is within it; 1 on failure, 2 on a bad command line.
const double ErrorLimit = 3e-3;

if (args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine(DemoOptions.Usage);
    return 0;
}

DemoOptions options;
try
{
    options = DemoOptions.Parse(args);
}
catch (FormatException e)
{
    Console.Error.WriteLine(e.Message);
    Console.Error.WriteLine(DemoOptions.Usage);
    return 2;
}

// Load and check the native library first, so that a missing or mismatched one is reported as such.
string libraryPath;
try
{
    libraryPath = MegaMoeLibrary.Path;
}
catch (DllNotFoundException e)
{
    Console.Error.WriteLine(e.Message);
    return 1;
}
catch (InvalidOperationException e)
{
    // The guard: the loaded file is not the MegaMoe library this binding was built for.
    Console.Error.WriteLine($"The MegaMoe native library does not match this program: {e.Message}");
    return 1;
}

try
{
    Console.WriteLine($"MegaMoe {MegaMoeLibrary.Version.ToString(3)} demo: FP8 Mixture-of-Experts layer");
    Console.WriteLine($"  library    {libraryPath}");
    Console.WriteLine($"  shape      E={options.Experts} experts, top-{options.TopK}, H={options.Hidden}, I={options.Intermediate}, T={options.Tokens} tokens, routed scaling {DemoOptions.RoutedScalingFactor}, seed {options.Seed}");
    try
    {
        return LayerDemo.Run(options, options.Backend, ErrorLimit);
    }
    catch (MegaMoeUnsupportedException e) when (options.Backend == Backend.Best)
    {
        // "Best" means the best backend that can run the layer; an explicit --backend cuda fails instead.
        Console.WriteLine($"  note       {e.NativeMessage}; running on the CPU instead");
        return LayerDemo.Run(options, Backend.Cpu, ErrorLimit);
    }
}
catch (MegaMoeException e)
{
    Console.Error.WriteLine($"MegaMoe failed ({e.Status}): {e.NativeMessage}");
    return 1;
}
