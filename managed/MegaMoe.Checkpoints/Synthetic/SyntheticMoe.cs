using System.Numerics;
using MegaMoe.Checkpoints.Experts;

namespace MegaMoe.Checkpoints.Synthetic;

/// <summary>
/// Deterministic random FP8 expert weights: codes uniform over the finite E4M3 values (NaN codes avoided), block
/// scales log-uniform in [1e-3, 1e-2]. Each expert's codes come from their own stream of the seed, so they are
/// regenerated on demand, one expert at a time, instead of being kept.
/// </summary>
public sealed class SyntheticMoe : IExpertWeights
{
    private const ulong W13Stream = 1, W2Stream = 2, ScaleStream = 3;

    private readonly ulong _seed;

    /// <summary>Creates the weights of <paramref name="experts"/> experts of shape H x I from <paramref name="seed"/>.</summary>
    public SyntheticMoe(int experts, long hidden, long intermediate, ulong seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(experts);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(hidden);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(intermediate);
        Experts = experts;
        Hidden = hidden;
        Intermediate = intermediate;
        _seed = seed;
        (long r13, long c13) = this.W13ScaleShape();
        (long r2, long c2) = this.W2ScaleShape();
        W13Scales = Scales(seed, 0, checked((int)(experts * r13 * c13)));
        W2Scales = Scales(seed, 1, checked((int)(experts * r2 * c2)));
    }

    /// <inheritdoc />
    public int Experts { get; }

    /// <inheritdoc />
    public long Hidden { get; }

    /// <inheritdoc />
    public long Intermediate { get; }

    /// <inheritdoc />
    public bool W13Interleaved => false;

    /// <summary>All experts' w13 scales, [E, ceil(2I/128), ceil(H/128)].</summary>
    public float[] W13Scales { get; }

    /// <summary>All experts' w2 scales, [E, ceil(H/128), ceil(I/128)].</summary>
    public float[] W2Scales { get; }

    /// <inheritdoc />
    public void ReadW13(int expert, Span<byte> destination) => Weights(W13Stream, expert, destination);

    /// <inheritdoc />
    public void ReadW2(int expert, Span<byte> destination) => Weights(W2Stream, expert, destination);

    /// <inheritdoc />
    public void ReadW13Scales(int expert, Span<float> destination) =>
        W13Scales.AsSpan(expert * destination.Length, destination.Length).CopyTo(destination);

    /// <inheritdoc />
    public void ReadW2Scales(int expert, Span<float> destination) =>
        W2Scales.AsSpan(expert * destination.Length, destination.Length).CopyTo(destination);

    private void Weights(ulong stream, int expert, Span<byte> destination)
    {
        SplitMix64.ForStream(_seed, stream, (ulong)expert).Fill(destination);

        // 0x7F and 0xFF are NaN in E4M3FN: move them to the neighbouring ±448 (0x7E, 0xFE).
        var nanBits = new Vector<byte>(0x7F);
        int i = 0;
        for (; i <= destination.Length - Vector<byte>.Count; i += Vector<byte>.Count)
        {
            var codes = new Vector<byte>(destination[i..]);
            Vector<byte> isNaN = Vector.Equals(codes & nanBits, nanBits);
            (codes ^ (isNaN & Vector<byte>.One)).CopyTo(destination[i..]);
        }

        for (; i < destination.Length; i++)
        {
            if ((destination[i] & 0x7F) == 0x7F)
            {
                destination[i] ^= 1;
            }
        }
    }

    private static float[] Scales(ulong seed, ulong tensor, int count)
    {
        var random = SplitMix64.ForStream(seed, ScaleStream, tensor);
        var scales = new float[count];
        for (int i = 0; i < count; i++)
        {
            scales[i] = (float)Math.Exp(Math.Log(1e-3) + (random.NextDouble() * Math.Log(10)));
        }

        return scales;
    }
}
