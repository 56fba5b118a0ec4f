using MegaMoe.Interop;

namespace MegaMoe;

// FP8 quantization with float32 block scales (docs/NUMERICS.md section 2).
public sealed partial class MoeContext
{
    /// <summary>
    /// Quantizes activations in 1x128 groups along K: <paramref name="q"/> = fp8(x / sf) with one scale
    /// sf = max(amax, 1e-4) / 448 per row and group.
    /// </summary>
    /// <param name="x">[M, K] <see cref="DataType.BFloat16"/> or <see cref="DataType.Float32"/>.</param>
    /// <param name="q">[M, K] <see cref="DataType.Float8E4M3"/> output.</param>
    /// <param name="scales">[M, ceil(K/128)] <see cref="DataType.Float32"/> output.</param>
    /// <param name="options">Scale rounding.</param>
    /// <param name="stream">The CUDA stream the work is enqueued on; 0 is the legacy default stream.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">A tensor has the wrong type, shape or device.</exception>
    public unsafe void QuantizeActivations(
        DeviceTensor x, DeviceTensor q, DeviceTensor scales,
        QuantizationOptions options = QuantizationOptions.None, nint stream = default)
    {
        MegaMoeTensor tx = TensorArgs.Required(x), tq = TensorArgs.Required(q), ts = TensorArgs.Required(scales);
        using var lease = new TensorLease(x, q, scales);
        NativeMethods.megamoe_quantize_activations(Handle, &tx, &tq, &ts, (uint)options, stream).ThrowIfFailed();
    }

    /// <summary>
    /// Quantizes activations exactly as <see cref="QuantizeActivations"/> does, and adds to
    /// <paramref name="nonfiniteRows"/> the number of rows of <paramref name="x"/> that hold a NaN or an infinity, on
    /// the device, so that a server can check its inputs without waiting for the stream (read the count when it reads
    /// the results). Non-finite input is quantized as docs/NUMERICS.md section 2 says, never refused.
    /// </summary>
    /// <param name="x">[M, K] <see cref="DataType.BFloat16"/> or <see cref="DataType.Float32"/>.</param>
    /// <param name="q">[M, K] <see cref="DataType.Float8E4M3"/> output.</param>
    /// <param name="scales">[M, ceil(K/128)] <see cref="DataType.Float32"/> output.</param>
    /// <param name="nonfiniteRows">
    /// [1] <see cref="DataType.Int32"/> on this context, incremented (wrapping at 2^32) by the count.
    /// </param>
    /// <param name="options">Scale rounding.</param>
    /// <param name="stream">The CUDA stream the work is enqueued on; 0 is the legacy default stream.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">A tensor has the wrong type, shape or device, or the count overlaps another argument.</exception>
    public unsafe void QuantizeActivationsChecked(
        DeviceTensor x, DeviceTensor q, DeviceTensor scales, DeviceTensor nonfiniteRows,
        QuantizationOptions options = QuantizationOptions.None, nint stream = default)
    {
        MegaMoeTensor tx = TensorArgs.Required(x), tq = TensorArgs.Required(q), ts = TensorArgs.Required(scales);
        MegaMoeTensor tn = TensorArgs.Required(nonfiniteRows);
        using var lease = new TensorLease(x, q, scales, nonfiniteRows);
        NativeMethods.megamoe_quantize_activations_checked(Handle, &tx, &tq, &ts, (uint)options, &tn, stream).ThrowIfFailed();
    }

    /// <summary>Dequantizes activations: <paramref name="output"/> = q * sf, rounded once.</summary>
    /// <param name="q">[M, K] <see cref="DataType.Float8E4M3"/>.</param>
    /// <param name="scales">[M, ceil(K/128)] <see cref="DataType.Float32"/>.</param>
    /// <param name="output">[M, K] <see cref="DataType.BFloat16"/> or <see cref="DataType.Float32"/> output.</param>
    /// <param name="stream">The CUDA stream the work is enqueued on; 0 is the legacy default stream.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">A tensor has the wrong type, shape or device.</exception>
    public unsafe void DequantizeActivations(DeviceTensor q, DeviceTensor scales, DeviceTensor output, nint stream = default)
    {
        MegaMoeTensor tq = TensorArgs.Required(q), ts = TensorArgs.Required(scales), to = TensorArgs.Required(output);
        using var lease = new TensorLease(q, scales, output);
        NativeMethods.megamoe_dequantize_activations(Handle, &tq, &ts, &to, stream).ThrowIfFailed();
    }

    /// <summary>Quantizes weights in 128x128 blocks, one scale sf = max(amax, 1e-4) / 448 per block.</summary>
    /// <param name="w">[E, N, K] or [N, K] <see cref="DataType.BFloat16"/> or <see cref="DataType.Float32"/>.</param>
    /// <param name="q"><see cref="DataType.Float8E4M3"/> output of the same shape.</param>
    /// <param name="scales">[E, ceil(N/128), ceil(K/128)] or [ceil(N/128), ceil(K/128)] <see cref="DataType.Float32"/> output.</param>
    /// <param name="options">Scale rounding.</param>
    /// <param name="stream">The CUDA stream the work is enqueued on; 0 is the legacy default stream.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">A tensor has the wrong type, shape or device.</exception>
    public unsafe void QuantizeWeights(
        DeviceTensor w, DeviceTensor q, DeviceTensor scales,
        QuantizationOptions options = QuantizationOptions.None, nint stream = default)
    {
        MegaMoeTensor tw = TensorArgs.Required(w), tq = TensorArgs.Required(q), ts = TensorArgs.Required(scales);
        using var lease = new TensorLease(w, q, scales);
        NativeMethods.megamoe_quantize_weights(Handle, &tw, &tq, &ts, (uint)options, stream).ThrowIfFailed();
    }

    /// <summary>Dequantizes 128x128-block weights: <paramref name="output"/> = q * sf, rounded once.</summary>
    /// <param name="q">[E, N, K] or [N, K] <see cref="DataType.Float8E4M3"/>.</param>
    /// <param name="scales">[E, ceil(N/128), ceil(K/128)] or [ceil(N/128), ceil(K/128)] <see cref="DataType.Float32"/>.</param>
    /// <param name="output"><see cref="DataType.BFloat16"/> or <see cref="DataType.Float32"/> output shaped like <paramref name="q"/>.</param>
    /// <param name="stream">The CUDA stream the work is enqueued on; 0 is the legacy default stream.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">A tensor has the wrong type, shape or device.</exception>
    public unsafe void DequantizeWeights(DeviceTensor q, DeviceTensor scales, DeviceTensor output, nint stream = default)
    {
        MegaMoeTensor tq = TensorArgs.Required(q), ts = TensorArgs.Required(scales), to = TensorArgs.Required(output);
        using var lease = new TensorLease(q, scales, output);
        NativeMethods.megamoe_dequantize_weights(Handle, &tq, &ts, &to, stream).ThrowIfFailed();
    }
}
