namespace CudaFinetune.Errors;

/// <summary>
/// A problem the user can fix (a bad flag, a missing or malformed file, an unsupported model).
/// The CLI prints only its message and exits with code 2; anything else is an engine fault.
/// Messages say what is wrong and what to do.
/// </summary>
public class UserErrorException : Exception
{
    public UserErrorException()
    {
    }

    public UserErrorException(string message)
        : base(message)
    {
    }

    public UserErrorException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
