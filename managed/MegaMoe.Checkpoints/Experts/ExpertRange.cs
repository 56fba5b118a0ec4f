namespace MegaMoe.Checkpoints.Experts;

/// <summary>
/// Experts [<see cref="First"/>, <see cref="First"/> + <see cref="IExpertWeights.Experts"/>) of another
/// <see cref="IExpertWeights"/>, numbered from 0: the part of a layer one rank of an expert-parallel group holds
/// (<see cref="EpMoeLayer"/>).
/// </summary>
public sealed class ExpertRange : IExpertWeights
{
    private readonly IExpertWeights _all;

    /// <summary>Views experts [<paramref name="first"/>, <paramref name="first"/> + <paramref name="count"/>) of <paramref name="all"/>.</summary>
    /// <param name="all">The whole layer.</param>
    /// <param name="first">The first expert of the range.</param>
    /// <param name="count">Experts in the range, at least 1.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range is empty or does not lie within the layer's experts.</exception>
    public ExpertRange(IExpertWeights all, int first, int count)
    {
        ArgumentNullException.ThrowIfNull(all);
        ArgumentOutOfRangeException.ThrowIfNegative(first);
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, all.Experts - first);
        _all = all;
        First = first;
        Experts = count;
    }

    /// <summary>The first expert of the range in the whole layer.</summary>
    public int First { get; }

    /// <inheritdoc/>
    public int Experts { get; }

    /// <inheritdoc/>
    public long Hidden => _all.Hidden;

    /// <inheritdoc/>
    public long Intermediate => _all.Intermediate;

    /// <inheritdoc/>
    public bool W13Interleaved => _all.W13Interleaved;

    /// <inheritdoc/>
    public void ReadW13(int expert, Span<byte> destination) => _all.ReadW13(Global(expert), destination);

    /// <inheritdoc/>
    public void ReadW2(int expert, Span<byte> destination) => _all.ReadW2(Global(expert), destination);

    /// <inheritdoc/>
    public void ReadW13Scales(int expert, Span<float> destination) => _all.ReadW13Scales(Global(expert), destination);

    /// <inheritdoc/>
    public void ReadW2Scales(int expert, Span<float> destination) => _all.ReadW2Scales(Global(expert), destination);

    private int Global(int expert)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(expert);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(expert, Experts);
        return First + expert;
    }
}
