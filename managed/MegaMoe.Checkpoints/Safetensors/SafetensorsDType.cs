namespace MegaMoe.Checkpoints.Safetensors;

/// <summary>Element types of the safetensors format, named as the header spells them ("BF16", "F8_E4M3", ...).</summary>
public enum SafetensorsDType
{
    /// <summary>"BOOL", one byte.</summary>
    Bool,

    /// <summary>"U8".</summary>
    U8,

    /// <summary>"I8".</summary>
    I8,

    /// <summary>"F8_E5M2".</summary>
    F8E5M2,

    /// <summary>"F8_E4M3": OCP E4M3FN, the FP8 format of DeepSeek-V3 checkpoints and of MegaMoe.</summary>
    F8E4M3,

    /// <summary>"I16".</summary>
    I16,

    /// <summary>"U16".</summary>
    U16,

    /// <summary>"F16".</summary>
    F16,

    /// <summary>"BF16".</summary>
    BF16,

    /// <summary>"I32".</summary>
    I32,

    /// <summary>"U32".</summary>
    U32,

    /// <summary>"F32".</summary>
    F32,

    /// <summary>"F64".</summary>
    F64,

    /// <summary>"I64".</summary>
    I64,

    /// <summary>"U64".</summary>
    U64,
}
