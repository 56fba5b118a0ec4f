using MegaMoe.Interop;

namespace MegaMoe;

// Block-scaled FP8 GEMMs: D = A . B^T with float32 accumulation, written BF16 (docs/NUMERICS.md section 3).
// A is FP8 [.., K] with [.., K/128] scales; B is FP8 [(E,) N, K] with [(E,) N/128, K/128] scales; N, K multiples of 128.
public sealed partial class MoeContext
{
    /// <summary>Dense GEMM: <paramref name="d"/> [M, N] = A . B^T.</summary>
    /// <param name="a">[M, K] <see cref="DataType.Float8E4M3"/>.</param>
    /// <param name="aScales">[M, K/128] <see cref="DataType.Float32"/>.</param>
    /// <param name="b">[N, K] <see cref="DataType.Float8E4M3"/>.</param>
    /// <param name="bScales">[N/128, K/128] <see cref="DataType.Float32"/>.</param>
    /// <param name="d">[M, N] <see cref="DataType.BFloat16"/> output.</param>
    /// <param name="stream">The CUDA stream the work is enqueued on; 0 is the legacy default stream.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">A tensor has the wrong type, shape or device.</exception>
    public unsafe void GemmDense(
        DeviceTensor a, DeviceTensor aScales, DeviceTensor b, DeviceTensor bScales, DeviceTensor d, nint stream = default)
    {
        MegaMoeTensor ta = TensorArgs.Required(a), tas = TensorArgs.Required(aScales);
        MegaMoeTensor tb = TensorArgs.Required(b), tbs = TensorArgs.Required(bScales), td = TensorArgs.Required(d);
        using var lease = new TensorLease(a, aScales, b, bScales, d);
        NativeMethods.megamoe_gemm_dense(Handle, &ta, &tas, &tb, &tbs, &td, stream).ThrowIfFailed();
    }

    /// <summary>
    /// Grouped GEMM, contiguous layout: row m of A uses expert <c>mIndices[m]</c>; -1 marks a padding row, written as
    /// zeros. Each aligned block of 128 rows holds rows of at most one expert.
    /// </summary>
    /// <param name="a">[M, K] <see cref="DataType.Float8E4M3"/>.</param>
    /// <param name="aScales">[M, K/128] <see cref="DataType.Float32"/>.</param>
    /// <param name="b">[E, N, K] <see cref="DataType.Float8E4M3"/>.</param>
    /// <param name="bScales">[E, N/128, K/128] <see cref="DataType.Float32"/>.</param>
    /// <param name="mIndices">[M] <see cref="DataType.Int32"/>: row to expert.</param>
    /// <param name="d">[M, N] <see cref="DataType.BFloat16"/> output.</param>
    /// <param name="stream">The CUDA stream the work is enqueued on; 0 is the legacy default stream.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">A tensor has the wrong type, shape or device, or an index is out of range.</exception>
    public unsafe void GemmGroupedContiguous(
        DeviceTensor a, DeviceTensor aScales, DeviceTensor b, DeviceTensor bScales, DeviceTensor mIndices, DeviceTensor d,
        nint stream = default)
    {
        MegaMoeTensor ta = TensorArgs.Required(a), tas = TensorArgs.Required(aScales);
        MegaMoeTensor tb = TensorArgs.Required(b), tbs = TensorArgs.Required(bScales);
        MegaMoeTensor tm = TensorArgs.Required(mIndices), td = TensorArgs.Required(d);
        using var lease = new TensorLease(a, aScales, b, bScales, mIndices, d);
        NativeMethods.megamoe_gemm_grouped_contiguous(Handle, &ta, &tas, &tb, &tbs, &tm, &td, stream).ThrowIfFailed();
    }

    /// <summary>
    /// Grouped GEMM, contiguous layout by offsets: expert e owns rows [offsets[e], offsets[e+1]); rows outside every
    /// segment are written as zeros. Segments need no alignment.
    /// </summary>
    /// <param name="a">[M, K] <see cref="DataType.Float8E4M3"/>.</param>
    /// <param name="aScales">[M, K/128] <see cref="DataType.Float32"/>.</param>
    /// <param name="b">[E, N, K] <see cref="DataType.Float8E4M3"/>.</param>
    /// <param name="bScales">[E, N/128, K/128] <see cref="DataType.Float32"/>.</param>
    /// <param name="offsets">[E + 1] <see cref="DataType.Int32"/> or <see cref="DataType.Int64"/>, non-decreasing within [0, M].</param>
    /// <param name="d">[M, N] <see cref="DataType.BFloat16"/> output.</param>
    /// <param name="stream">The CUDA stream the work is enqueued on; 0 is the legacy default stream.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">A tensor has the wrong type, shape or device, or the offsets are invalid.</exception>
    public unsafe void GemmGroupedOffsets(
        DeviceTensor a, DeviceTensor aScales, DeviceTensor b, DeviceTensor bScales, DeviceTensor offsets, DeviceTensor d,
        nint stream = default)
    {
        MegaMoeTensor ta = TensorArgs.Required(a), tas = TensorArgs.Required(aScales);
        MegaMoeTensor tb = TensorArgs.Required(b), tbs = TensorArgs.Required(bScales);
        MegaMoeTensor to = TensorArgs.Required(offsets), td = TensorArgs.Required(d);
        using var lease = new TensorLease(a, aScales, b, bScales, offsets, d);
        NativeMethods.megamoe_gemm_grouped_offsets(Handle, &ta, &tas, &tb, &tbs, &to, &td, stream).ThrowIfFailed();
    }

    /// <summary>
    /// Grouped GEMM, masked layout: for each expert e, rows m &lt; <c>maskedM[e]</c> of group e are computed; the other
    /// rows of <paramref name="d"/> are left untouched.
    /// </summary>
    /// <param name="a">[E, maxM, K] <see cref="DataType.Float8E4M3"/>.</param>
    /// <param name="aScales">[E, maxM, K/128] <see cref="DataType.Float32"/>.</param>
    /// <param name="b">[E, N, K] <see cref="DataType.Float8E4M3"/>.</param>
    /// <param name="bScales">[E, N/128, K/128] <see cref="DataType.Float32"/>.</param>
    /// <param name="maskedM">[E] <see cref="DataType.Int32"/> in device memory, each within [0, maxM].</param>
    /// <param name="expectedM">The typical <c>maskedM</c> value; only steers the kernel choice. 0 = unknown.</param>
    /// <param name="d">[E, maxM, N] <see cref="DataType.BFloat16"/> output.</param>
    /// <param name="stream">The CUDA stream the work is enqueued on; 0 is the legacy default stream.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">A tensor has the wrong type, shape or device, or a count is out of range.</exception>
    public unsafe void GemmGroupedMasked(
        DeviceTensor a, DeviceTensor aScales, DeviceTensor b, DeviceTensor bScales, DeviceTensor maskedM, long expectedM,
        DeviceTensor d, nint stream = default)
    {
        MegaMoeTensor ta = TensorArgs.Required(a), tas = TensorArgs.Required(aScales);
        MegaMoeTensor tb = TensorArgs.Required(b), tbs = TensorArgs.Required(bScales);
        MegaMoeTensor tm = TensorArgs.Required(maskedM), td = TensorArgs.Required(d);
        using var lease = new TensorLease(a, aScales, b, bScales, maskedM, d);
        NativeMethods.megamoe_gemm_grouped_masked(Handle, &ta, &tas, &tb, &tbs, &tm, expectedM, &td, stream)
            .ThrowIfFailed();
    }
}
