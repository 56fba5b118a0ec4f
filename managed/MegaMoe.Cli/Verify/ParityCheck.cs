namespace MegaMoe.Cli.Verify;

/// <summary>One comparison of the backend under test with the CPU backend.</summary>
/// <param name="Model">The shape's name.</param>
/// <param name="Tokens">T.</param>
/// <param name="Check">quantize-activations, gemm-dense, gemm-grouped-offsets or moe-layer.</param>
/// <param name="Status">pass or fail.</param>
/// <param name="Metric">
/// Mismatching elements (bitwise checks) or 1 - 2&lt;x,y&gt;/(|x|^2+|y|^2) (numeric checks); null when the backend under test
/// rejected the operation as unsupported (a failed check).
/// </param>
/// <param name="Limit">The largest metric that passes.</param>
/// <param name="Detail">What the metric means, or why the operation could not run.</param>
internal sealed record ParityCheck(string Model, int Tokens, string Check, string Status, double? Metric, double? Limit, string Detail)
{
    public const string Pass = "pass", Fail = "fail";

    public static ParityCheck Compare(ParityProblem problem, string check, double metric, double limit, string detail) =>
        new(problem.Shape.Name, problem.Tokens, check, metric <= limit ? Pass : Fail, metric, limit, detail);
}

/// <summary>The document of <c>megamoe verify --json</c>.</summary>
/// <param name="Backend">The backend verified against the CPU backend.</param>
/// <param name="Device">Its device.</param>
/// <param name="ExpertSpecialization">--expert-specialization of the layers checked: none, up, down or both.</param>
/// <param name="Passed">Checks that passed.</param>
/// <param name="Failed">Checks that failed (an operation the backend rejects as unsupported included).</param>
/// <param name="Checks">Every check.</param>
internal sealed record VerifyReport(string Backend, string Device, string ExpertSpecialization, int Passed, int Failed, IReadOnlyList<ParityCheck> Checks);
