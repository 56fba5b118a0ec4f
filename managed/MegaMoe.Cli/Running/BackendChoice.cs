namespace MegaMoe.Cli.Running;

/// <summary>
/// Opens contexts for --backend. "best" is the library's own choice (MEGAMOE_BACKEND_BEST): the CUDA backend when it is
/// usable here, else the CPU backend. An explicit --backend cuda without a usable GPU fails with exit code 3 and the
/// library's reason.
/// </summary>
internal static class BackendChoice
{
    public static MoeContext Open(Backend backend, int threads)
    {
        MoeContext context = MoeContext.Create(backend);
        try
        {
            if (threads > 0)
            {
                context.NumThreads = threads;
            }

            return context;
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>Opens a context and creates a layer session on it; the context is disposed when the layer cannot be created.</summary>
    public static (MoeContext Context, LayerSession Session) CreateLayer(Backend backend, int threads, Func<MoeContext, LayerSession> create)
    {
        MoeContext context = Open(backend, threads);
        try
        {
            return (context, create(context));
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    public static string Describe(MoeContext context)
    {
        DeviceInfo d = context.DeviceInfo;
        return context.Backend == Backend.Cpu
            ? $"CPU - {d.Name}, {d.MultiprocessorCount} threads"
            : $"CUDA - {d.Name}, SM {d.ComputeCapability}, {d.MultiprocessorCount} SMs";
    }
}
