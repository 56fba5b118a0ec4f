using MegaMoe.Interop;

namespace MegaMoe;

/// <summary>
/// A grouped GEMM over unsorted tokens with their routing as given (<c>topk_idx</c>, <c>topk_weights</c>): no
/// permutation by the caller. The plan owns the fixed workspace for routing metadata, sized at creation, so
/// <see cref="Run"/> allocates nothing, never synchronizes with the host and can be captured in a CUDA graph.
/// One <see cref="Run"/> at a time per plan.
/// </summary>
public sealed class RoutedGemmPlan : IDisposable
{
    private readonly RoutedPlanHandle _handle;

    private RoutedGemmPlan(RoutedPlanHandle handle, long maxTokens, int topK, int numExperts, long n, long k)
    {
        _handle = handle;
        MaxTokens = maxTokens;
        TopK = topK;
        NumExperts = numExperts;
        N = n;
        K = k;
    }

    /// <summary>The largest token count a <see cref="Run"/> may pass.</summary>
    public long MaxTokens { get; }

    /// <summary>Slots per token.</summary>
    public int TopK { get; }

    /// <summary>Experts E.</summary>
    public int NumExperts { get; }

    /// <summary>Output features N (a multiple of 128).</summary>
    public long N { get; }

    /// <summary>Reduction size K (a multiple of 128).</summary>
    public long K { get; }

    /// <summary>Creates a plan.</summary>
    /// <param name="context">The context to run on.</param>
    /// <param name="maxTokens">The largest token count T a run may pass.</param>
    /// <param name="topK">Slots per token.</param>
    /// <param name="numExperts">Experts E.</param>
    /// <param name="n">Output features N, a multiple of 128.</param>
    /// <param name="k">Reduction size K, a multiple of 128.</param>
    /// <param name="options">Kernel selection.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">A size is out of range.</exception>
    /// <exception cref="MegaMoeUnsupportedException">
    /// The context is on <see cref="Backend.Cuda"/>: the CUDA backend does not implement the routed GEMM yet; use
    /// <see cref="Backend.Cpu"/>.
    /// </exception>
    public static RoutedGemmPlan Create(
        MoeContext context, long maxTokens, int topK, int numExperts, long n, long k,
        RoutedPlanOptions options = RoutedPlanOptions.None)
    {
        ArgumentNullException.ThrowIfNull(context);
        NativeMethods.megamoe_routed_plan_create(
            context.Handle, maxTokens, topK, numExperts, n, k, (uint)options, out RoutedPlanHandle handle).ThrowIfFailed(handle);
        return new RoutedGemmPlan(handle, maxTokens, topK, numExperts, n, k);
    }

    /// <summary>
    /// Computes <c>d[t, j] = w[t, j] * (A[t] . B[topkIdx[t, j]]^T)</c>, with zeros for dropped slots (index -1).
    /// </summary>
    /// <param name="a">[T, K] <see cref="DataType.Float8E4M3"/>, T &lt;= <see cref="MaxTokens"/>.</param>
    /// <param name="aScales">[T, K/128] <see cref="DataType.Float32"/>.</param>
    /// <param name="b">[E, N, K] <see cref="DataType.Float8E4M3"/>.</param>
    /// <param name="bScales">[E, N/128, K/128] <see cref="DataType.Float32"/>.</param>
    /// <param name="topkIdx">[T, top_k] <see cref="DataType.Int32"/> or <see cref="DataType.Int64"/>; -1 drops a slot.</param>
    /// <param name="topkWeights">[T, top_k] <see cref="DataType.Float32"/>, or <see langword="null"/> for weight 1.</param>
    /// <param name="d">[T, top_k, N] <see cref="DataType.BFloat16"/> output.</param>
    /// <param name="numTokens">
    /// <see langword="null"/>, or [1] <see cref="DataType.Int32"/> in device memory holding the number of valid tokens
    /// (&lt;= T); later tokens are not read and their outputs not written.
    /// </param>
    /// <param name="stream">The CUDA stream the work is enqueued on; 0 is the legacy default stream.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">A tensor has the wrong type, shape or device, or an index is out of range.</exception>
    public unsafe void Run(
        DeviceTensor a, DeviceTensor aScales, DeviceTensor b, DeviceTensor bScales, DeviceTensor topkIdx,
        DeviceTensor? topkWeights, DeviceTensor d, DeviceTensor? numTokens = null, nint stream = default)
    {
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        MegaMoeTensor ta = TensorArgs.Required(a), tas = TensorArgs.Required(aScales);
        MegaMoeTensor tb = TensorArgs.Required(b), tbs = TensorArgs.Required(bScales);
        MegaMoeTensor ti = TensorArgs.Required(topkIdx), td = TensorArgs.Required(d);
        MegaMoeTensor tw = TensorArgs.Optional(topkWeights), tn = TensorArgs.Optional(numTokens);
        using var lease = new TensorLease(a, aScales, b, bScales, topkIdx, topkWeights, d, numTokens);
        NativeMethods.megamoe_gemm_routed(
            _handle, &ta, &tas, &tb, &tbs, &ti, topkWeights is null ? null : &tw, numTokens is null ? null : &tn, &td,
            stream).ThrowIfFailed();
    }

    /// <summary>Frees the plan (once a run in flight has returned); harmless when repeated.</summary>
    public void Dispose() => _handle.Dispose();
}
