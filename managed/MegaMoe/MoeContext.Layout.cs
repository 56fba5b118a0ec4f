using MegaMoe.Interop;

namespace MegaMoe;

// Weight layout transforms.
public sealed partial class MoeContext
{
    /// <summary>
    /// Interleaves gate and up rows of w13 [(E,) 2I, H] in groups of 8 (gate 0-7, up 0-7, gate 8-15, ...), the layout
    /// the SM90 fused kernel reads; <paramref name="inverse"/> undoes it. Block scales are unchanged by the transform.
    /// </summary>
    /// <param name="w">[E, 2I, H] or [2I, H] of any type, I a multiple of 8.</param>
    /// <param name="output">The result, same type and shape; must not overlap <paramref name="w"/>.</param>
    /// <param name="inverse">Restore [gate; up] from the interleaved order.</param>
    /// <param name="stream">The CUDA stream the work is enqueued on; 0 is the legacy default stream.</param>
    /// <exception cref="MegaMoeInvalidArgumentException">A tensor has the wrong type, shape or device.</exception>
    public unsafe void InterleaveGateUp(DeviceTensor w, DeviceTensor output, bool inverse = false, nint stream = default)
    {
        MegaMoeTensor tw = TensorArgs.Required(w), to = TensorArgs.Required(output);
        using var lease = new TensorLease(w, output);
        NativeMethods.megamoe_interleave_gate_up(Handle, &tw, &to, inverse ? 1 : 0, stream).ThrowIfFailed();
    }
}
