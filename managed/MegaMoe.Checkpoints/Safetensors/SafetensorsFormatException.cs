namespace MegaMoe.Checkpoints.Safetensors;

/// <summary>A safetensors file (or a checkpoint index) is malformed; the message names the file and what is wrong.</summary>
public sealed class SafetensorsFormatException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SafetensorsFormatException()
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">What is wrong, for a person.</param>
    public SafetensorsFormatException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">What is wrong, for a person.</param>
    /// <param name="innerException">The parser's own error.</param>
    public SafetensorsFormatException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
