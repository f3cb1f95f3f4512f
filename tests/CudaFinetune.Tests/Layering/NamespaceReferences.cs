using Mono.Cecil;
using Mono.Cecil.Cil;

namespace CudaFinetune.Tests.Layering;

/// <summary>
/// Which of our namespaces each of our namespaces uses, read from the compiled assemblies with Mono.Cecil: every type a
/// type names in its base type, interfaces, fields, properties, events, method signatures, locals, attributes and the
/// instructions of its method bodies (so a `new CpuBackend()` inside a method counts, not only the signatures). A nested or
/// compiler-generated type (a lambda's closure) belongs to the namespace of the type that declares it.
/// </summary>
internal static class NamespaceReferences
{
    /// <summary>One use of one of our types by another: the using type and namespace, the used type and namespace.</summary>
    public sealed record Use(string FromType, string From, string ToType, string To);

    /// <summary>Every distinct use between types of different namespaces under <paramref name="prefix"/>.</summary>
    public static IReadOnlyList<Use> Read(IEnumerable<string> assemblyPaths, string prefix)
    {
        var uses = new HashSet<Use>();
        foreach (string path in assemblyPaths)
        {
            using var module = ModuleDefinition.ReadModule(path);
            foreach (TypeDefinition type in module.GetTypes())
            {
                string from = NamespaceOf(type);
                if (!from.StartsWith(prefix, StringComparison.Ordinal))
                {
                    continue;
                }
                foreach (TypeReference used in Uses(type).Where(t => t is not null))
                {
                    foreach (TypeReference element in Elements(used))
                    {
                        string to = NamespaceOf(element);
                        if (to != from && to.StartsWith(prefix, StringComparison.Ordinal))
                        {
                            uses.Add(new Use(Outermost(type).FullName, from, Outermost(element).FullName, to));
                        }
                    }
                }
            }
        }
        return [.. uses];
    }

    private static TypeReference Outermost(TypeReference type)
    {
        while (type.DeclaringType is { } outer)
        {
            type = outer;
        }
        return type;
    }

    private static string NamespaceOf(TypeReference type) => Outermost(type).Namespace;

    /// <summary>The named types inside a type reference: an array's element, a generic's definition and arguments.</summary>
    private static IEnumerable<TypeReference> Elements(TypeReference? type)
    {
        switch (type)
        {
            case GenericInstanceType generic:
                foreach (TypeReference inner in Elements(generic.ElementType).Concat(generic.GenericArguments.SelectMany(Elements)))
                {
                    yield return inner;
                }
                break;
            case FunctionPointerType pointer:
                foreach (TypeReference inner in pointer.Parameters.Select(p => p.ParameterType).Append(pointer.ReturnType).SelectMany(Elements))
                {
                    yield return inner;
                }
                break;
            case TypeSpecification spec: // arrays, pointers, by-refs, modifiers
                foreach (TypeReference inner in Elements(spec.ElementType))
                {
                    yield return inner;
                }
                break;
            case GenericParameter or null:
                break;
            default:
                yield return type;
                break;
        }
    }

    private static IEnumerable<TypeReference> Uses(TypeDefinition type)
    {
        if (type.BaseType is { } baseType)
        {
            yield return baseType;
        }
        foreach (var i in type.Interfaces)
        {
            yield return i.InterfaceType;
        }
        foreach (var a in type.CustomAttributes)
        {
            yield return a.AttributeType;
        }
        foreach (var f in type.Fields)
        {
            yield return f.FieldType;
        }
        foreach (var p in type.Properties)
        {
            yield return p.PropertyType;
        }
        foreach (var e in type.Events)
        {
            yield return e.EventType;
        }
        foreach (var g in type.GenericParameters.SelectMany(g => g.Constraints))
        {
            yield return g.ConstraintType;
        }
        foreach (MethodDefinition method in type.Methods)
        {
            foreach (TypeReference t in Signature(method))
            {
                yield return t;
            }
            if (!method.HasBody)
            {
                continue;
            }
            foreach (var local in method.Body.Variables)
            {
                yield return local.VariableType;
            }
            foreach (Instruction instruction in method.Body.Instructions)
            {
                switch (instruction.Operand)
                {
                    case TypeReference t:
                        yield return t;
                        break;
                    case MethodReference m:
                        yield return m.DeclaringType;
                        foreach (TypeReference s in Signature(m))
                        {
                            yield return s;
                        }
                        if (m is GenericInstanceMethod gm)
                        {
                            foreach (TypeReference a in gm.GenericArguments)
                            {
                                yield return a;
                            }
                        }
                        break;
                    case FieldReference f:
                        yield return f.DeclaringType;
                        yield return f.FieldType;
                        break;
                }
            }
        }
    }

    private static IEnumerable<TypeReference> Signature(MethodReference method) =>
        method.Parameters.Select(p => p.ParameterType).Append(method.ReturnType);
}
