using System.Reflection;

namespace MegaMoe.Cli;

/// <summary>Versions of this program, which share the native header's version (managed/Directory.Build.props).</summary>
internal static class CliVersion
{
    /// <summary>"0.1.0+commit" as the SDK stamps it from git (just "0.1.0" outside a git checkout).</summary>
    public static string Informational { get; } =
        typeof(CliVersion).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    /// <summary>The MegaMoe managed assembly's version.</summary>
    public static string Managed { get; } = typeof(MoeContext).Assembly.GetName().Version?.ToString(3) ?? "unknown";

    /// <summary>The source commit this program was built from (short), or null when unknown.</summary>
    public static string? Commit
    {
        get
        {
            int plus = Informational.IndexOf('+', StringComparison.Ordinal);
            return plus < 0 ? null : Informational[(plus + 1)..][..Math.Min(7, Informational.Length - plus - 1)];
        }
    }
}
