// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {DepositForwarder} from "./DepositForwarder.sol";

/// One deposit address per order: the CREATE2 address of an EIP-1167 clone of
/// `implementation` for the order's salt. The address is computable off-chain
/// (so the watcher holds no keys) and receives tokens before any code is there.
/// `sweep` deploys the clones that are missing and moves their balances to the
/// fixed `treasury`; funds can go nowhere else, so sweeping is open to anyone.
contract DepositFactory {
    address public immutable treasury;
    address public immutable implementation;
    bytes32 public immutable cloneCodeHash;

    event Swept(address indexed token, address indexed deposit, uint256 amount);

    constructor(address treasury_) {
        require(treasury_ != address(0), "treasury is zero");
        treasury = treasury_;
        address impl = address(new DepositForwarder());
        implementation = impl;
        cloneCodeHash = keccak256(_cloneCode(impl));
    }

    /// The deposit address of `salt`, deployed or not.
    function addressOf(bytes32 salt) public view returns (address) {
        bytes32 h = keccak256(abi.encodePacked(bytes1(0xff), address(this), salt, cloneCodeHash));
        return address(uint160(uint256(h)));
    }

    /// Deploys the forwarder of `salt` unless it is already there; returns its address.
    function deployForwarder(bytes32 salt) public returns (address forwarder) {
        forwarder = addressOf(salt);
        if (forwarder.code.length == 0) {
            bytes memory code = _cloneCode(implementation);
            address created;
            assembly {
                created := create2(0, add(code, 0x20), mload(code), salt)
            }
            require(created == forwarder, "create2 failed");
        }
    }

    /// Sweeps `token` from the deposit addresses of `salts` to the treasury.
    function sweep(address token, bytes32[] calldata salts) external returns (uint256 total) {
        address to = treasury;
        for (uint256 i; i < salts.length; ++i) {
            address forwarder = deployForwarder(salts[i]);
            uint256 amount = DepositForwarder(forwarder).sweep(token, to);
            if (amount > 0) {
                emit Swept(token, forwarder, amount);
                total += amount;
            }
        }
    }

    function _cloneCode(address impl) private pure returns (bytes memory) {
        return abi.encodePacked(
            hex"3d602d80600a3d3981f3363d3d373d3d3d363d73", impl, hex"5af43d82803e903d91602b57fd5bf3"
        );
    }
}
