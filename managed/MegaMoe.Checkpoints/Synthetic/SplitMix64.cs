namespace MegaMoe.Checkpoints.Synthetic;

/// <summary>
/// SplitMix64: a tiny, fast generator whose streams are fixed by the seed alone, so every expert's weights can be
/// regenerated independently (and in parallel) for the float64 check. <see cref="Random"/> with a seed is slower
/// byte-for-byte and its sequence is not promised across .NET versions.
/// </summary>
internal struct SplitMix64(ulong seed)
{
    private ulong _state = seed;

    /// <summary>A generator for one named stream of <paramref name="seed"/> (e.g. one tensor of one expert).</summary>
    public static SplitMix64 ForStream(ulong seed, ulong stream, ulong index)
    {
        var mixer = new SplitMix64(seed ^ (stream * 0x9E37_79B9_7F4A_7C15UL));
        ulong streamSeed = mixer.NextUInt64() ^ index;
        return new SplitMix64(new SplitMix64(streamSeed).NextUInt64());
    }

    /// <summary>The next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        ulong z = _state += 0x9E37_79B9_7F4A_7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1).</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Standard normal (Box-Muller).</summary>
    public double NextNormal() =>
        Math.Sqrt(-2.0 * Math.Log(1.0 - NextDouble())) * Math.Cos(2.0 * Math.PI * NextDouble());

    /// <summary>Fills <paramref name="bytes"/> with random bits.</summary>
    public void Fill(Span<byte> bytes)
    {
        Span<ulong> words = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(bytes);
        for (int i = 0; i < words.Length; i++)
        {
            words[i] = NextUInt64();
        }

        for (int i = words.Length * sizeof(ulong); i < bytes.Length; i++)
        {
            bytes[i] = (byte)NextUInt64();
        }
    }
}
