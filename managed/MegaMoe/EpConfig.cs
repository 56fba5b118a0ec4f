using MegaMoe.Interop;

namespace MegaMoe;

/// <summary>
/// One rank's part of an expert-parallel group (docs/EP.md): the group's shape, which every rank passes alike, and
/// this rank's range of global experts. An <see cref="EpDispatcher"/> reads only <see cref="Experts"/>,
/// <see cref="TopK"/>, <see cref="Hidden"/>, <see cref="MaxTokensPerRank"/>, <see cref="ExpertBegin"/> and
/// <see cref="LocalExperts"/>; an <see cref="EpMoeLayer"/> also the layer's math, as <see cref="MoeLayerOptions"/>.
/// </summary>
public sealed record EpConfig
{
    /// <summary>Experts E over all ranks, 1 to 1024.</summary>
    public required int Experts { get; init; }

    /// <summary>Slots per token, 1 to 16.</summary>
    public required int TopK { get; init; }

    /// <summary>Hidden size H, a multiple of 128.</summary>
    public required long Hidden { get; init; }

    /// <summary>The largest token count any rank passes, at least 1; sizes every rank's exchange buffers.</summary>
    public required long MaxTokensPerRank { get; init; }

    /// <summary>This rank's first global expert.</summary>
    public required int ExpertBegin { get; init; }

    /// <summary>This rank's experts, at least 1; the ranks' ranges partition [0, E) in rank order.</summary>
    public required int LocalExperts { get; init; }

    /// <summary>Expert intermediate size I, a multiple of 128 (layers).</summary>
    public long Intermediate { get; init; }

    /// <summary>alpha of the activation (layers): 1 for SwiGLU (DeepSeek), 1.702 for GPT-OSS.</summary>
    public float ActivationAlpha { get; init; } = 1f;

    /// <summary>beta of the activation (layers): 0 for SwiGLU, 1 for GPT-OSS.</summary>
    public float ActivationBeta { get; init; }

    /// <summary>c &gt; 0 clamps gate &lt;= c and -c &lt;= up &lt;= c (layers); 0 disables the clamp.</summary>
    public float ActivationClamp { get; init; }

    /// <summary>Multiplies every top-k weight (layers): 2.5 for DeepSeek-V3, else 1.</summary>
    public float RoutedScalingFactor { get; init; } = 1f;

    /// <summary>This rank's w13 rows are already gate/up interleaved (need not agree across ranks).</summary>
    public bool W13Interleaved { get; init; }

    /// <summary>Expert specialization of the local layer's up-projection (see <see cref="MoeLayerOptions.ExpertSpecializationUp"/>).</summary>
    public bool ExpertSpecializationUp { get; init; }

    /// <summary>Expert specialization of the local layer's down-projection.</summary>
    public bool ExpertSpecializationDown { get; init; }

    /// <summary>Keep the dispatch, compute and combine times of the last forward (<see cref="EpMoeLayer.Timings"/>).</summary>
    public bool RecordTimings { get; init; }

    /// <summary>
    /// The even split of <paramref name="experts"/> over <paramref name="worldSize"/> ranks that EP examples use: the
    /// first <c>experts % worldSize</c> ranks own one expert more.
    /// </summary>
    /// <param name="experts">Experts E.</param>
    /// <param name="worldSize">Ranks W, 1 to E.</param>
    /// <param name="rank">The rank, 0 to W - 1.</param>
    /// <returns>The rank's first expert and its number of experts.</returns>
    /// <exception cref="ArgumentOutOfRangeException">W is not 1 to E, or the rank is not 0 to W - 1.</exception>
    public static (int ExpertBegin, int LocalExperts) EvenSplit(int experts, int worldSize, int rank)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(worldSize, experts);
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, worldSize);
        int share = experts / worldSize, extra = experts % worldSize;
        return ((rank * share) + Math.Min(rank, extra), share + (rank < extra ? 1 : 0));
    }

    internal unsafe MegaMoeEpConfig ToNative(ProgressBridge? bridge) => new()
    {
        StructSize = (uint)sizeof(MegaMoeEpConfig),
        Flags = (W13Interleaved ? MegaMoeMoeConfig.W13InterleavedFlag : 0)
            | (ExpertSpecializationUp ? MegaMoeMoeConfig.ExpertSpecializationUpFlag : 0)
            | (ExpertSpecializationDown ? MegaMoeMoeConfig.ExpertSpecializationDownFlag : 0)
            | (RecordTimings ? MegaMoeEpConfig.RecordTimingsFlag : 0),
        NumExperts = Experts,
        TopK = TopK,
        Hidden = Hidden,
        Intermediate = Intermediate,
        MaxTokensPerRank = MaxTokensPerRank,
        ExpertBegin = ExpertBegin,
        NumLocalExperts = LocalExperts,
        ActivationAlpha = ActivationAlpha,
        ActivationBeta = ActivationBeta,
        ActivationClamp = ActivationClamp,
        RoutedScalingFactor = RoutedScalingFactor,
        Progress = bridge is not null ? ProgressBridge.Callback : null,
        ProgressUserData = bridge?.UserData ?? 0,
    };
}
